"""Provides inotify watchers read by the event loop: FileWatcher (one file) and TreeWatcher.

FileWatcher is inotify on a folder, read by a loop callback, debounced. TreeWatcher walks
the trees it watches in a worker thread, so a big tree never holds up the loop.

watchfiles polls its event buffer every `step` milliseconds (50 by default) from a thread,
so an idle host would wake twenty times a second. Watching one manifest needs none of
that: inotify's descriptor sits in the event loop and is read only when the kernel has
something to say. The folder is watched, not the file, because editors save by writing
a temporary file and renaming it over the original.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import struct
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuisup.model.record import Record

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_MOVE_SELF = 0x800
# IN_ATTRIB too: a touch counts (a chmod is told apart by its unchanged mtime). IN_MOVE_SELF:
# a watched folder moved away is no longer where its watch says (IN_IGNORED tells a deletion).
CHANGES = (
    IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_MODIFY
    | IN_ATTRIB
    | IN_MOVE_SELF
)
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ISDIR = 0x40000000
_HEADER = struct.Struct("iIII")


def _inotify() -> tuple[Any, int] | None:
    """Return (libc, a non-blocking inotify descriptor), or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    fd = int(libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC))
    return (libc, fd) if fd >= 0 else None


def _events(data: bytes) -> list[tuple[int, int, bytes]]:
    """Split what inotify read into (watch descriptor, mask, name)."""
    out, offset = [], 0
    while offset + _HEADER.size <= len(data):
        wd, mask, _, size = _HEADER.unpack_from(data, offset)
        name = data[offset + _HEADER.size : offset + _HEADER.size + size].rstrip(b"\0")
        out.append((wd, mask, name))
        offset += _HEADER.size + size
    return out


DEBOUNCE = 0.2
"""Seconds of quiet after the last change before it is acted on (trailing edge)."""
LINGER = 1.0
"""Seconds the walker thread waits for more folders before it ends: a burst of new folders
(a checkout, a tree being made) costs one thread start, not one per read."""


class FileWatcher:
    """Calls `on_change()` once a burst of changes to one file has settled.

    A TreeWatcher on the file's folder (not recursive: editors save by renaming a temporary
    file over the original), keeping only the events that name the file.
    """

    def __init__(self, path: Path, on_change: Callable[[], None], debounce: float = DEBOUNCE):
        self.path = path
        self.on_change = on_change
        self.debounce = debounce
        self._timer: asyncio.TimerHandle | None = None
        self._tree = TreeWatcher(self._changed, keep=lambda folder: False, on_overflow=self._arm)

    def start(self) -> bool:
        """Begin watching; return False where inotify is not available (then nothing is)."""
        return self._tree.start([Root(path=self.path, floor=self.path.parent)])

    def close(self) -> None:
        """Stop watching."""
        if self._timer is not None:
            self._timer.cancel()
        self._tree.close()

    def _changed(self, paths: set[Path]) -> None:
        if self.path in paths:
            self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self.debounce, self._settled)

    def _settled(self) -> None:
        self._timer = None
        self.on_change()


class Root(Record):
    """A path a TreeWatcher watches, and how far up it may look for it while it is missing."""

    path: Path
    """A folder (watched with everything below it) or a file (watched through its folder)."""
    floor: Path
    """The highest folder watched for `path` while that is missing (a service's cwd)."""


class TreeWatcher:
    """inotify on folder trees, read by a loop callback: `on_paths(paths)` for each read.

    Folders created later are watched as they appear (with what they already hold);
    `keep(path)` decides which folders are worth watching at all. A root that is missing,
    or goes (deleted, moved away), is waited for: the nearest existing folder on the way
    to it is watched by itself until it is back, and what it then holds is a change.

    What lies below a folder is walked in a worker thread, never on the loop (so `keep`
    is called from either). Nothing that changes meanwhile is lost: a folder is watched
    before it is listed, so a file is either listed or reported by inotify (or both), and
    the kernel queues the events of a watch until the loop reads them. The loop reads once
    the first walk is done, so a watcher that reports a change watches all it was asked to.
    """

    def __init__(
        self,
        on_paths: Callable[[set[Path]], None],
        keep: Callable[[Path], bool],
        on_overflow: Callable[[], None],
    ):
        self.on_paths = on_paths
        self.keep = keep
        self.on_overflow = on_overflow
        """Called when the kernel dropped events: anything may have changed."""
        self._lock = threading.RLock()
        """Guards the watches (`_folders`, `_deep`, `_fd`): the walker adds some too. The
        loop holds it for a whole read, so that it waits for the walker once per read."""
        self._folders: dict[int, Path] = {}
        self._deep: set[int] = set()
        """The watches whose new subfolders are watched too (the trees of folder roots)."""
        self._roots: dict[Root, Path | None] = {}
        """Each root and the folder watched for it now: itself, or one on the way to it."""
        self._libc: Any = None
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reading = False
        self._below: list[tuple[Path, bool]] = []
        """Folders watched whose subtrees the walker has yet to walk, and whether what it
        finds there is a change (not during the first walk, which starts the watch)."""
        self._walker: threading.Thread | None = None
        self._work = threading.Condition(self._lock)
        """Notified when folders are queued for a walker that is waiting for more."""

    def start(self, roots: list[Root]) -> bool:
        """Watch `roots`; return False where inotify is not available (then nothing is).

        Their trees are walked in a worker thread; events are read once that is done.
        """
        found = _inotify()
        if found is None:
            return False
        self._libc, self._fd = found
        self._loop = asyncio.get_running_loop()
        for root in roots:
            self._place(root)
        if self._below:
            self._walk_below()  # and read once it is done (`_walked`)
        else:
            self._begin_reading()
        return True

    def _begin_reading(self) -> None:
        assert self._loop is not None and self._fd is not None
        self._reading = True
        self._loop.add_reader(self._fd, self._read)

    def _place(self, root: Root) -> set[Path]:
        """Watch `root` as far as it exists now; return what it holds, as changes.

        A folder is watched with all below it (what the walk finds there comes later, from
        `_walked`); a file, or a path not there yet, through the nearest existing folder
        on the way to it, by itself (so its creation is seen).
        """
        tried: list[Path] = []
        anchor = _nearest(root)
        while anchor is not None and anchor != root.path and anchor not in tried:
            self._add(anchor, deep=False)
            tried.append(anchor)
            anchor = _nearest(root)  # looked again once watched: nothing slipped in between
        old = self._roots.get(root)
        self._roots[root] = anchor
        for folder in {old, *tried}:
            if folder is not None and folder != anchor:
                self._release(folder)
        if anchor == root.path:
            self._add_tree(root.path)
            return set()
        return {root.path} if anchor == root.path.parent and root.path.exists() else set()

    def _add_tree(self, top: Path) -> None:
        """Watch `top` now, and have the walker watch what is below it, new subfolders too.

        The files the walk finds are changes once events are read (not in the first walk).
        """
        if self._add(top, deep=True):
            with self._lock:
                self._below.append((top, self._reading))

    def _add(self, folder: Path, deep: bool) -> bool:
        """Watch `folder` (from the loop or the walker); return whether it is watched."""
        with self._lock:  # held until it is known: an event for it is never taken as stray
            if self._fd is None:
                return False
            wd = int(self._libc.inotify_add_watch(self._fd, os.fsencode(folder), CHANGES))
            if wd < 0:
                return False
            self._folders[wd] = folder
            if deep:
                self._deep.add(wd)
            return True

    def _walk_below(self) -> None:
        """Have the walker take the queued folders; it is started if none is running."""
        with self._lock:
            if not self._below:
                return
            if self._walker is not None:
                self._work.notify()  # it takes them as soon as it is done with its own
                return
            self._walker = threading.Thread(
                target=self._walker_main, name="tuisup:watch-walk", daemon=True
            )
        self._walker.start()

    def _walker_main(self) -> None:
        """Walk what is queued, batch after batch; end once none came for LINGER seconds."""
        assert self._loop is not None
        while True:
            with self._lock:
                if not self._below and self._fd is not None:
                    self._work.wait(LINGER)
                batch, self._below = self._below, []
                if not batch or self._fd is None:
                    self._walker = None
                    return
            found: set[Path] = set()
            for top, report in batch:
                files = self._walk(top)
                if report:
                    found |= files
            try:
                self._loop.call_soon_threadsafe(self._walked, found)
            except RuntimeError:  # the loop is closed: so is the watch
                with self._lock:
                    self._walker = None
                return

    def _walk(self, top: Path) -> set[Path]:
        """Watch the kept folders below `top`, each before it is listed; return the files.

        `top` is watched already. Runs in the walker thread.
        """
        files: set[Path] = set()
        folders = [top]
        while folders and self._fd is not None:
            folder = folders.pop()
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        path = folder / entry.name
                        if not entry.is_dir():
                            files.add(path)
                        elif not entry.is_symlink() and self.keep(path) and self._add(path, True):
                            folders.append(path)
            except OSError:
                continue  # gone already: its removal is an event of its parent's
        return files

    def _walked(self, found: set[Path]) -> None:
        """A batch of walks is done: the first starts the reading; report what they found."""
        if self._fd is None:
            return  # closed meanwhile
        if not self._reading:
            self._begin_reading()
        if found:
            self.on_paths(found)

    def _release(self, folder: Path) -> None:
        """Stop watching a folder that was watched by itself only for roots now elsewhere."""
        if folder in self._roots.values():
            return
        with self._lock:
            for wd, path in list(self._folders.items()):
                if path == folder and wd not in self._deep:
                    del self._folders[wd]
                    self._libc.inotify_rm_watch(self._fd, wd)

    def _read(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 1 << 16)
        except BlockingIOError:
            return
        with self._lock:
            paths = self._take(data)
        self._walk_below()
        if paths:
            self.on_paths(paths)

    def _take(self, data: bytes) -> set[Path]:
        """Act on the events read; return the paths they name (locked)."""
        paths: set[Path] = set()
        for wd, mask, name in _events(data):
            if mask & IN_Q_OVERFLOW:
                self.on_overflow()
                continue
            folder = self._folders.get(wd)
            if folder is None:  # a watch dropped already
                continue
            if mask & IN_IGNORED:  # deleted (what was below it had its own IN_IGNORED)
                self._unwatch(wd)
                paths.update(self._gone(folder))
                continue
            if mask & IN_MOVE_SELF:  # moved to who knows where
                paths.update(self._moved(folder))
                continue
            if not name:
                continue
            path = folder / os.fsdecode(name)
            paths.add(path)
            if not mask & IN_ISDIR:
                continue
            if mask & IN_MOVED_FROM:
                paths.update(self._moved(path))
            elif mask & (IN_CREATE | IN_MOVED_TO):
                if wd in self._deep and self.keep(path):
                    self._add_tree(path)  # what it holds already comes from the walker
                paths.update(self._arrived(path))
        return paths

    def _unwatch(self, wd: int) -> None:
        with self._lock:
            self._folders.pop(wd, None)
            self._deep.discard(wd)

    def _moved(self, folder: Path) -> set[Path]:
        """`folder` moved away: what is watched there and below is elsewhere now."""
        with self._lock:
            for wd, path in list(self._folders.items()):
                if path.is_relative_to(folder):
                    del self._folders[wd]
                    self._deep.discard(wd)
                    self._libc.inotify_rm_watch(self._fd, wd)
        return self._gone(folder)

    def _gone(self, folder: Path) -> set[Path]:
        """`folder` left its place: watch for the roots it held as far as they still exist.

        Returns the roots that went with it (a folder root going is a change), and what
        they hold if they are back already.
        """
        gone: set[Path] = set()
        for root, anchor in list(self._roots.items()):
            if anchor is not None and anchor.is_relative_to(folder):
                if anchor == root.path:
                    gone.add(root.path)
                gone.update(self._place(root))
        return gone

    def _arrived(self, folder: Path) -> set[Path]:
        """`folder` appeared: place the roots waiting beside it that it is, or leads to."""
        found: set[Path] = set()
        for root, anchor in list(self._roots.items()):
            if anchor == folder.parent and (root.path == folder or folder in root.path.parents):
                found.update(self._place(root))
        return found

    def close(self) -> None:
        """Stop watching; a walk under way stops at its next folder."""
        with self._lock:
            fd, self._fd = self._fd, None
            self._work.notify()  # a walker waiting for more ends now
        if fd is not None:
            if self._reading and self._loop is not None:
                self._loop.remove_reader(fd)
            os.close(fd)


def _nearest(root: Root) -> Path | None:
    """The folder to watch for `root`: itself if a folder, else the nearest one above it.

    Not above its floor: None when even the floor is gone.
    """
    if root.path.is_dir():
        return root.path
    folder = root.path.parent
    while folder == root.floor or root.floor in folder.parents:
        if folder.is_dir():
            return folder
        folder = folder.parent
    return None
