"""Watched trees are walked in a worker thread, and nothing that changes meanwhile is lost.

Regressions: the walk of every watched tree at start, and the walk of a folder created
later (inside the inotify callback), ran on the event loop: a tree of thousands of folders
moved into a watched root froze the loop while each was listed and watched. And a file
written into a folder after the walk had listed it but before it was watched was missed.
Real inotify, real folders, a real walk.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

from tests.conftest import wait_event
from tests.integration.loop_stalls import LoopStalls
from tests.integration.test_watch import armed as armed_host
from tests.integration.test_watch import manifest, sentinel, spec
from tuisup.engine import Host
from tuisup.engine.events import FilesChanged
from tuisup.engine.watch import Root, TreeWatcher

WIDTH, LEAVES = 40, 50
"""A tree of 40 folders of 50 folders each: 2,040 folders, a file in each leaf."""
STALL_MAX = 0.03
"""Seconds the loop may go without running a callback while a big tree arrives at once
(walked on the loop, it stalled 41-150 ms here; walked in a thread, 0.3-11 ms)."""
HOST_STALL_MAX = 0.06
"""The same through a host, where the walk and then the sifting of 2,000 changed paths
take turns with the loop in holding the GIL (3-20 ms here; it was 266-316 ms)."""
MADE_STALL_MAX = 0.1
"""The same while another process makes the tree folder by folder: each read of events
then watches the new folders it names, and that process competes for the CPU too."""


class Seen:
    """The paths a TreeWatcher reported, and a way to wait for some."""

    def __init__(self) -> None:
        self.paths: set[Path] = set()
        self.overflowed = False
        self._news = anyio.Event()
        self._fresh: list[set[Path]] = []

    def __call__(self, paths: set[Path]) -> None:
        self.paths |= paths
        self._fresh.append(paths)
        self._news.set()

    def overflow(self) -> None:
        self.overflowed = True
        self._news.set()

    async def until(self, predicate: Callable[[set[Path]], bool], timeout: float = 10) -> None:
        with anyio.fail_after(timeout):
            while not predicate(self.paths):
                self._news = anyio.Event()
                await self._news.wait()

    async def all_of(self, wanted: list[Path], timeout: float = 10) -> None:
        """Wait until every path of `wanted` was reported: looking costs what came since."""
        missing = set(wanted) - self.paths
        self._fresh.clear()
        with anyio.fail_after(timeout):
            while missing and not self.overflowed:
                self._news = anyio.Event()
                await self._news.wait()
                for batch in self._fresh:
                    missing -= batch
                self._fresh.clear()
        assert not self.overflowed, "the kernel dropped events"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def watch(root: Path, seen: Seen) -> Iterator[Callable[..., TreeWatcher]]:
    """watch(keep=...) starts a TreeWatcher on `root`; it is closed when the test ends."""
    watchers: list[TreeWatcher] = []

    def start(keep: Callable[[Path], bool] = lambda folder: True) -> TreeWatcher:
        watcher = TreeWatcher(seen, keep, seen.overflow)
        assert watcher.start([Root(path=root, floor=root)])
        watchers.append(watcher)
        return watcher

    yield start
    for watcher in watchers:
        watcher.close()


async def armed(root: Path, seen: Seen) -> None:
    """Wait until the watcher reports changes in `root`: it reads once its first walk is done."""
    probe = root / "armed"
    with anyio.fail_after(10):
        while probe not in seen.paths:
            probe.write_text("armed?")
            with anyio.move_on_after(0.5):
                await seen.until(lambda paths: probe in paths)


def tree(top: Path) -> list[Path]:
    """The files of a tree of WIDTH x LEAVES folders under `top`, one in each leaf."""
    return [top / f"a{i}" / f"b{j}" / "f.txt" for i in range(WIDTH) for j in range(LEAVES)]


MAKE = """
import pathlib, sys
for line in sys.stdin:
    file = pathlib.Path(line.rstrip("\\n"))
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text("")
"""


async def make(files: list[Path]) -> None:
    """Make `files` and their folders from another process, as an editor or git would."""
    names = "".join(f"{file}\n" for file in files).encode()
    await anyio.run_process([sys.executable, "-c", MAKE], input=names)


async def test_a_tree_of_2000_folders_moved_in_does_not_stall_the_loop(
    tmp_path: Path, root: Path, seen: Seen, watch: Callable[..., TreeWatcher]
) -> None:
    await make(tree(tmp_path / "outside"))
    files = tree(root / "tree")
    watch()
    await armed(root, seen)
    with LoopStalls() as stalls:
        os.rename(tmp_path / "outside", root / "tree")  # one event: the walk finds all the rest
        await seen.all_of(files)
    print(f"longest stall with 2,040 folders moved in: {stalls.longest * 1000:.1f} ms")
    assert stalls.longest < STALL_MAX, f"the loop stalled for {stalls.longest:.3f}s"
    deepest = files[-1].parent / "new.txt"  # and every folder of it is watched
    deepest.write_text("")
    await seen.until(lambda paths: deepest in paths)


async def test_a_tree_of_2000_folders_made_in_place_is_seen_whole_without_stalling_the_loop(
    root: Path, seen: Seen, watch: Callable[..., TreeWatcher]
) -> None:
    watch()
    await armed(root, seen)
    with LoopStalls() as stalls:
        files = tree(root / "tree")
        await make(files)
        await seen.all_of(files)
    print(f"longest stall with 2,040 folders made in place: {stalls.longest * 1000:.1f} ms")
    assert stalls.longest < MADE_STALL_MAX, f"the loop stalled for {stalls.longest:.3f}s"
    deepest = files[-1].parent / "new.txt"
    deepest.write_text("")
    await seen.until(lambda paths: deepest in paths)


def writes_while_walked(name: str) -> Callable[[Path], bool]:
    """A `keep` that, asked about `name`, writes `late.txt` beside it: into the folder the
    walk has just listed and may not be watching yet."""

    def keep(folder: Path) -> bool:
        late = folder.parent / "late.txt"
        if folder.name == name and not late.exists():
            late.write_text("")
        return True

    return keep


async def test_a_file_written_while_the_first_walk_runs_is_not_lost(
    root: Path, seen: Seen, watch: Callable[..., TreeWatcher]
) -> None:
    (root / "sub").mkdir()
    watch(keep=writes_while_walked("sub"))
    await armed(root, seen)
    await seen.until(lambda paths: root / "late.txt" in paths)


async def test_a_file_written_while_a_new_folder_is_walked_is_not_lost(
    tmp_path: Path, root: Path, seen: Seen, watch: Callable[..., TreeWatcher]
) -> None:
    (tmp_path / "new" / "sub").mkdir(parents=True)
    watch(keep=writes_while_walked("sub"))
    await armed(root, seen)
    os.rename(tmp_path / "new", root / "new")
    await seen.until(lambda paths: root / "new" / "late.txt" in paths)


async def test_a_tree_of_2000_folders_moved_into_a_services_cwd_does_not_stall_the_loop(
    tmp_path: Path,
) -> None:
    """The whole way: the walk, then routing 2,000 changed files to the service watching them
    (tuisup's own folders and the patterns looked up by path, not by Path object)."""
    cwd = tmp_path / "app"
    cwd.mkdir()
    await make(tree(tmp_path / "outside"))
    web = spec(cwd, "web", "sleep 60", watch=(".",), watch_ignore=("ignored/",))
    async with Host(manifest(cwd, web, sentinel(cwd))) as host:
        await armed_host(host, cwd)
        with LoopStalls() as stalls:
            os.rename(tmp_path / "outside", cwd / "tree")
            event = await wait_event(
                host,
                lambda e: isinstance(e, FilesChanged) and e.service == "web",
                host.bus.last_seq,
            )
    print(f"longest stall with 2,040 folders moved into a cwd: {stalls.longest * 1000:.1f} ms")
    assert stalls.longest < HOST_STALL_MAX, f"the loop stalled for {stalls.longest:.3f}s"
    assert isinstance(event, FilesChanged) and len(event.paths) == 1 + WIDTH * LEAVES  # and "tree"
