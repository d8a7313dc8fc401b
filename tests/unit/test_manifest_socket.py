"""`[tuisup] socket` and `--socket`: where the control socket goes, checked with file:line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.unit.test_manifest import problems, write
from tuisup.cli import _overridden, _parser
from tuisup.control.paths import socket_path
from tuisup.manifest import load_manifest

SERVICE = '[services.web]\ncommand = "true"\n'


def test_the_socket_defaults_to_none_the_place_beside_the_manifest(here: Path) -> None:
    manifest = load_manifest(write(SERVICE))
    assert manifest.settings.socket is None
    where = socket_path(manifest.path, manifest.settings.socket)
    assert where.path == here / ".tuisup" / "tuisup.sock"
    assert where.own_folder and not where.fallback


def test_a_relative_socket_is_taken_from_the_manifests_folder(here: Path) -> None:
    (here / "sub").mkdir()
    os.chdir(here / "sub")
    manifest = load_manifest(write(f'[tuisup]\nsocket = "run/ctl.sock"\n{SERVICE}'))
    assert manifest.settings.socket == here / "sub" / "run" / "ctl.sock"
    where = socket_path(manifest.path, manifest.settings.socket)
    assert where.path == here / "sub" / "run" / "ctl.sock"
    assert not where.own_folder  # the user's folder: its mode is theirs


def test_a_socket_path_is_not_resolved_so_a_symlink_stays_visible(here: Path) -> None:
    (here / "elsewhere.sock").write_text("")
    (here / "ctl.sock").symlink_to(here / "elsewhere.sock")
    manifest = load_manifest(write(f'[tuisup]\nsocket = "ctl.sock"\n{SERVICE}'))
    assert manifest.settings.socket == here / "ctl.sock"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", "2:10: tuisup.socket: expected a string, got boolean true"),
        ('""', '2:10: tuisup.socket: expected the path of a socket file, got string ""'),
        ('"run/"', '2:10: tuisup.socket: expected the path of a socket file, got string "run/"'),
        ('"a\\u0000b"', "2:10: tuisup.socket: a path cannot contain NUL characters"),
    ],
)
def test_a_bad_socket_is_a_problem_at_its_key(here: Path, value: str, expected: str) -> None:
    assert problems(f"[tuisup]\nsocket = {value}\n{SERVICE}") == [f"services.toml:{expected}"]


def test_the_socket_flag_overrides_the_manifest_relative_to_the_current_folder(
    here: Path,
) -> None:
    manifest = load_manifest(write(f'[tuisup]\nsocket = "run/ctl.sock"\n{SERVICE}'))
    options = _parser().parse_args(["--socket", "other.sock"])
    assert _overridden(manifest, options).settings.socket == here / "other.sock"
    options = _parser().parse_args([])
    assert _overridden(manifest, options).settings.socket == here / "run" / "ctl.sock"
