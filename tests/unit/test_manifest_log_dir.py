"""`[tuisup] log_dir` is checked up front: a folder tuisup can write in, or can make."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.unit.test_manifest import problems
from tuisup.manifest import load_manifest

SERVICE = '[services.web]\ncommand = "true"\n'


def test_a_log_dir_that_is_a_file_is_a_problem_at_its_key(here: Path) -> None:
    (here / "logs").write_text("")
    assert problems(f'[tuisup]\nlog_dir = "logs"\n{SERVICE}') == [
        f"services.toml:2:11: tuisup.log_dir: {here / 'logs'} is not a directory"
    ]


def test_a_log_dir_under_a_file_is_a_problem(here: Path) -> None:
    (here / "var").write_text("")
    assert problems(f'[tuisup]\nlog_dir = "var/logs"\n{SERVICE}') == [
        f"services.toml:2:11: tuisup.log_dir: cannot create {here / 'var/logs'}: "
        f"{here / 'var'} is not a directory"
    ]


def test_the_default_log_dir_is_checked_too(here: Path) -> None:
    (here / ".tuisup").write_text("")
    assert problems(SERVICE) == [
        f"services.toml:1:1: tuisup.log_dir: cannot create {here / '.tuisup/logs'}: "
        f"{here / '.tuisup'} is not a directory (the default; set log_dir in [tuisup])"
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in any folder")
def test_a_log_dir_that_cannot_be_written_is_a_problem(here: Path) -> None:
    (here / "locked").mkdir(mode=0o500)
    assert problems(f'[tuisup]\nlog_dir = "locked/logs"\n{SERVICE}') == [
        f"services.toml:2:11: tuisup.log_dir: cannot create {here / 'locked/logs'}: "
        f"no permission to write in {here / 'locked'}"
    ]


def test_a_missing_log_dir_or_no_log_dir_is_fine(here: Path) -> None:
    for text in ('[tuisup]\nlog_dir = "new/logs"\n', "[tuisup]\nlog_dir = false\n"):
        Path("services.toml").write_text(text + SERVICE)
        assert list(load_manifest("services.toml").services) == ["web"]
    (here / "logs").write_text("")
    Path("services.toml").write_text("[tuisup]\nlog_dir = false\n" + SERVICE)
    assert load_manifest("services.toml").settings.log_dir is None


def test_a_log_dir_of_the_wrong_type_is_one_problem_not_also_the_default_folder(
    here: Path,
) -> None:
    """`log_dir = 5` was reported, and then the default folder was checked in its place and
    its problem reported at `log_dir` too, as if the user had written that folder."""
    (here / ".tuisup").write_text("")
    for written, got in (("5", "integer 5"), ('""', 'string ""'), ("true", "boolean true")):
        assert problems(f"[tuisup]\nlog_dir = {written}\n{SERVICE}") == [
            f"services.toml:2:11: tuisup.log_dir: expected a path or false, got {got}"
        ]
