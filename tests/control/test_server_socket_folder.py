"""Regressions: a socket path whose folder does not exist.

`tuisup --no-tui --socket /nonexistent/dir/x.sock` made `/nonexistent/dir` (as root) and left
it behind. A path typed on the command line names a place that is there: a folder missing is
a typo, which is said, and nothing is made. A manifest's `[tuisup] socket` is the project's own
layout (`run/ctl.sock` beside it), so its folder is still made, as `.tuisup` is, and the
folders made for it are removed when the host exits.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.conftest import Tuisup, tagged_pids
from tests.control.raw import short_folder
from tests.control.verbs import tuisup, write
from tuisup.control.paths import SocketPath
from tuisup.control.server import ControlServer
from tuisup.engine import Host
from tuisup.spec import Manifest

WEB = """
[services.web]
command = "sleep 300"
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }
"""


def is_dir(path: Path) -> bool:
    return path.is_dir()


@asynccontextmanager
async def chosen(manifest: Manifest, where: Path) -> AsyncIterator[None]:
    """A host served at a path the user named (`[tuisup] socket`), as the runners serve it."""
    host = Host(manifest)
    server = ControlServer(host, SocketPath(path=where, chosen=True))
    server.bind()
    async with server, host:
        yield


@pytest.fixture
def folder() -> Iterator[Path]:
    with short_folder() as path:
        yield path


@pytest.mark.parametrize("verb", [(), ("up",), ("up", "-d")])
def test_a_socket_flag_in_a_folder_that_does_not_exist_is_refused_and_nothing_is_made(
    tmp_path: Path, token: str, verb: tuple[str, ...]
) -> None:
    write(tmp_path, token, WEB)
    options = ("--no-tui",) if not verb else ()
    done = tuisup(*options, "--socket", "missing/dir/x.sock", *verb, cwd=tmp_path, timeout=20)
    if found := re.search(r"\(pid (\d+)\)", done.stdout):  # `up -d` started a host: ended
        os.kill(int(found.group(1)), signal.SIGTERM)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "tuisup: cannot serve the control socket missing/dir/x.sock: "
        "its folder missing/dir does not exist\n"
    )
    assert not (tmp_path / "missing").exists()
    assert not (tmp_path / ".tuisup" / "tuisup.log").exists()  # no host was even started
    assert list(tagged_pids(token)) == []


def test_a_socket_flag_in_a_folder_that_exists_is_served(tmp_path: Path, token: str) -> None:
    write(tmp_path, token, WEB)
    (tmp_path / "run").mkdir()
    host = Tuisup("--no-tui", "--socket", "run/x.sock", cwd=tmp_path)
    host.expect(lambda line: line.startswith("web started"))
    assert (tmp_path / "run" / "x.sock").is_socket()
    assert tuisup("--socket", "run/x.sock", "down", cwd=tmp_path).returncode == 0
    assert host.finish() == 0
    assert (tmp_path / "run").is_dir()  # the user's folder: kept


async def test_the_folders_made_for_a_chosen_socket_are_removed_when_it_closes(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    where = folder / "made" / "deeper" / "ctl.sock"
    async with chosen(make_manifest(web="exec sleep 30"), where):
        assert where.is_socket()
    assert not (folder / "made").exists()
    assert is_dir(folder)  # it was there before: left


async def test_a_folder_made_for_a_chosen_socket_that_is_used_since_is_kept(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    where = folder / "made" / "ctl.sock"
    async with chosen(make_manifest(web="exec sleep 30"), where):
        (folder / "made" / "notes.txt").write_text("mine")
    assert (folder / "made" / "notes.txt").read_text() == "mine"
    assert not where.exists()


async def test_tuisups_own_folder_is_kept(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    where = folder / ".tuisup" / "tuisup.sock"
    host = Host(make_manifest(web="exec sleep 30"))
    async with ControlServer(host, SocketPath(path=where)):
        pass
    assert is_dir(folder / ".tuisup") and not where.exists()
