"""Provides FileWatcher: inotify on a folder, read by a loop callback, debounced.

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

IN_MODIFY = 0x002
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
CHANGES = IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MODIFY
_HEADER = struct.Struct("iIII")

DEBOUNCE = 0.2
"""Seconds of quiet after the last change before it is acted on (trailing edge)."""


class FileWatcher:
    """Calls `on_change()` once a burst of changes to `path` has settled."""

    def __init__(self, path: Path, on_change: Callable[[], None], debounce: float = DEBOUNCE):
        self.path = path
        self.on_change = on_change
        self.debounce = debounce
        self._fd: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> bool:
        """Begin watching; return False where inotify is not available (then nothing is)."""
        if not sys.platform.startswith("linux"):
            return False
        libc = ctypes.CDLL(None, use_errno=True)
        fd = int(libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC))
        if fd < 0:
            return False
        folder = os.fsencode(self.path.parent)
        if int(libc.inotify_add_watch(fd, folder, CHANGES)) < 0:
            os.close(fd)
            return False
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._read)
        return True

    def close(self) -> None:
        """Stop watching."""
        if self._timer is not None:
            self._timer.cancel()
        if self._fd is not None and self._loop is not None:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None

    def _read(self) -> None:
        assert self._fd is not None and self._loop is not None
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        name = os.fsencode(self.path.name)
        offset, touched = 0, False
        while offset + _HEADER.size <= len(data):
            _, _, _, size = _HEADER.unpack_from(data, offset)
            raw = data[offset + _HEADER.size : offset + _HEADER.size + size]
            touched = touched or raw.rstrip(b"\0") == name
            offset += _HEADER.size + size
        if touched:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_later(self.debounce, self._settled)

    def _settled(self) -> None:
        self._timer = None
        self.on_change()
