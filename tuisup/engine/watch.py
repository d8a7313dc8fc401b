"""Provides inotify watchers read by the event loop: FileWatcher (one file) and TreeWatcher.

FileWatcher is inotify on a folder, read by a loop callback, debounced.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
# IN_ATTRIB too: a touch counts (a chmod is told apart by its unchanged mtime).
CHANGES = (
    IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB
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
        return self._tree.start([self.path])

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


class TreeWatcher:
    """inotify on folder trees, read by a loop callback: `on_paths(paths)` for each read.

    Folders created later are watched as they appear (with what they already hold);
    `keep(path)` decides which folders are worth watching at all.
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
        self._folders: dict[int, Path] = {}
        self._libc: Any = None
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, roots: list[Path]) -> bool:
        """Watch `roots` (folders recursively, files through their folder)."""
        found = _inotify()
        if found is None:
            return False
        self._libc, self._fd = found
        for root in roots:
            if root.is_dir():
                self._add_tree(root)
            else:  # a file, there or not yet: its folder, not what is beside it
                self._add_tree(root.parent, recursive=False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._read)
        return True

    def _add_tree(self, top: Path, recursive: bool = True) -> set[Path]:
        """Watch `top` (and below); return the files found there."""
        files: set[Path] = set()
        for folder, dirs, names in os.walk(top) if recursive else [(str(top), [], [])]:
            here = Path(folder)
            dirs[:] = [d for d in dirs if self.keep(here / d)]
            wd = int(self._libc.inotify_add_watch(self._fd, os.fsencode(here), CHANGES))
            if wd >= 0:
                self._folders[wd] = here
            files.update(here / name for name in names)
        return files

    def _read(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 1 << 16)
        except BlockingIOError:
            return
        paths: set[Path] = set()
        for wd, mask, name in _events(data):
            if mask & IN_Q_OVERFLOW:
                self.on_overflow()
                continue
            if mask & IN_IGNORED:
                self._folders.pop(wd, None)
                continue
            folder = self._folders.get(wd)
            if folder is None or not name:
                continue
            path = folder / os.fsdecode(name)
            paths.add(path)
            if mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO) and self.keep(path):
                paths.update(self._add_tree(path))  # and what was written before we looked
        if paths:
            self.on_paths(paths)

    def close(self) -> None:
        """Stop watching."""
        if self._fd is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
