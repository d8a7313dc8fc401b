"""Provides the file watchers: the manifest's (inotify) and the services' (watchfiles).

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
import re
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from tuisup.spec import ServiceSpec

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


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a watch pattern relative to a service's cwd.

    `*` and `?` stay within one folder, `**/` spans any number of them, and a pattern
    without wildcards names a file or a whole folder (`templates/`).
    """
    pattern = pattern.strip("/").removeprefix("./")
    if not any(c in pattern for c in "*?["):
        return re.compile(re.escape(pattern) + r"(/.*)?")
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def static_root(cwd: Path, pattern: str) -> Path:
    """The folder (or file) a pattern can only match inside: its part before any wildcard."""
    parts: list[str] = []
    for part in pattern.strip("/").removeprefix("./").split("/"):
        if any(c in part for c in "*?["):
            break
        parts.append(part)
    return cwd.joinpath(*parts) if parts else cwd


@dataclass(frozen=True, slots=True)
class WatchRule:
    """What one service watches, compiled."""

    service: str
    cwd: Path
    include: tuple[re.Pattern[str], ...]
    exclude: tuple[re.Pattern[str], ...]
    debounce: float
    sources: tuple[Path, ...]
    """Where the patterns can match: what the watcher is pointed at."""

    @classmethod
    def of(cls, spec: ServiceSpec) -> WatchRule:
        """Compile a service's `watch`, `watch_ignore` and `watch_debounce`."""
        return cls(
            spec.name,
            spec.cwd,
            tuple(glob_regex(p) for p in spec.watch),
            tuple(glob_regex(p) for p in spec.watch_ignore),
            spec.watch_debounce / 1000,
            tuple(static_root(spec.cwd, p) for p in spec.watch),
        )

    def matches(self, path: Path) -> str | None:
        """Return the path relative to the service's cwd if this service watches it."""
        try:
            relative = path.relative_to(self.cwd).as_posix()
        except ValueError:
            return None
        if any(p.fullmatch(relative) for p in self.exclude):
            return None
        return relative if any(p.fullmatch(relative) for p in self.include) else None


class ServiceWatch:
    """One watchfiles watcher for every service's `watch` paths, dispatching changes.

    Each service gets its own trailing-edge debounce; when it fires, `on_change(service,
    paths)` is called with the relative paths that changed. tuisup's own log folder and
    the usual noise (VCS folders, caches, virtualenvs, node_modules, editor files) never
    count.
    """

    def __init__(
        self,
        specs: list[ServiceSpec],
        ignore: list[Path],
        on_change: Callable[[str, list[str]], None],
    ) -> None:
        self.rules = [WatchRule.of(spec) for spec in specs if spec.watch]
        self.paused: set[str] = set()
        """Services whose changes are ignored for now (by the user, or a restart loop)."""
        self.ignore = [p.resolve() for p in ignore]
        self.on_change = on_change
        self._pending: dict[str, set[str]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._seen: dict[Path, tuple[int, int, int]] = {}
        """(mtime, size, inode) of watched files: a change that keeps them is a chmod."""

    async def run(self) -> None:
        """Watch until cancelled."""
        import watchfiles

        paths = self.paths()
        if not paths:
            return
        noise = watchfiles.DefaultFilter(ignore_paths=[str(p) for p in self.ignore])
        await anyio.to_thread.run_sync(self._remember, paths, noise)
        async for changes in watchfiles.awatch(*paths, watch_filter=noise, debounce=50, step=20):
            self.take({Path(path) for _, path in changes})

    def _remember(self, roots: list[Path], noise: Callable[[Any, str], bool]) -> None:
        """Note every watched file's signature, so that a chmod later is not a change."""
        import watchfiles

        for root in roots:
            if root.is_file():
                self._changed(root)
                continue
            for folder, dirs, files in os.walk(root):
                dirs[:] = [d for d in dirs if noise(watchfiles.Change.added, f"{folder}/{d}")]
                for name in files:
                    self._changed(Path(folder, name))

    def _changed(self, path: Path) -> bool:
        """Whether the file's content may have changed since last seen (not just its mode)."""
        try:
            st = path.stat()
        except OSError:
            self._seen.pop(path, None)
            return True  # removed: that is a change
        signature = (st.st_mtime_ns, st.st_size, st.st_ino)
        if self._seen.get(path) == signature:
            return False
        self._seen[path] = signature
        return True

    def paths(self) -> list[Path]:
        """Every folder or file some rule's patterns can match inside.

        A path that does not exist yet is watched through its nearest existing folder
        (within the service's cwd), so that creating it later counts too.
        """
        found: set[Path] = set()
        for rule in self.rules:
            for source in rule.sources:
                while not source.exists() and source != rule.cwd and rule.cwd in source.parents:
                    source = source.parent
                if source.exists():
                    found.add(source)
        # A folder watched recursively covers everything below it.
        return sorted(p for p in found if not any(q in p.parents for q in found))

    def take(self, paths: set[Path]) -> None:
        """Route changed paths to the services watching them, and (re)arm their debounce."""
        loop = asyncio.get_running_loop()
        for path in paths:
            if any(path == i or i in path.parents for i in self.ignore):
                continue
            if not self._changed(path):
                continue
            for rule in self.rules:
                if rule.service in self.paused:
                    continue
                relative = rule.matches(path)
                if relative is None:
                    continue
                self._pending.setdefault(rule.service, set()).add(relative)
                timer = self._timers.pop(rule.service, None)
                if timer is not None:
                    timer.cancel()
                self._timers[rule.service] = loop.call_later(
                    rule.debounce, self._settled, rule.service
                )

    def _settled(self, service: str) -> None:
        self._timers.pop(service, None)
        paths = sorted(self._pending.pop(service, set()))
        if paths:
            self.on_change(service, paths)

    def watching(self, service: str) -> bool | None:
        """True if the service's changes restart it, False if paused, None if it watches nothing."""
        if not any(rule.service == service for rule in self.rules):
            return None
        return service not in self.paused

    def pause(self, service: str) -> None:
        """Stop acting on one service's changes; the others go on."""
        self.paused.add(service)
        self._pending.pop(service, None)
        timer = self._timers.pop(service, None)
        if timer is not None:
            timer.cancel()

    def close(self) -> None:
        """Forget pending changes."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._pending.clear()
