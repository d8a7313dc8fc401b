"""Provides the file watchers: the manifest's and the services', both inotify on the loop.

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
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
CHANGES = IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MODIFY
TREE_CHANGES = CHANGES | IN_ATTRIB  # a touch counts; a chmod is told apart by its mtime
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
        found = _inotify()
        if found is None:
            return False
        libc, fd = found
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
        if any(raw == name for _, _, raw in _events(data)):
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_later(self.debounce, self._settled)

    def _settled(self) -> None:
        self._timer = None
        self.on_change()


class TreeWatcher:
    """inotify on folder trees, read by a loop callback: `on_paths(paths)` for each read.

    Folders created later are watched as they appear (with what they already hold);
    `keep(path)` decides which folders are worth watching at all.
    """

    def __init__(self, on_paths: Callable[[set[Path]], None], keep: Callable[[Path], bool]):
        self.on_paths = on_paths
        self.keep = keep
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
            self._add_tree(root if root.is_dir() else root.parent, recursive=root.is_dir())
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._read)
        return True

    def _add_tree(self, top: Path, recursive: bool = True) -> set[Path]:
        """Watch `top` (and below); return the files found there."""
        files: set[Path] = set()
        for folder, dirs, names in os.walk(top) if recursive else [(str(top), [], [])]:
            here = Path(folder)
            dirs[:] = [d for d in dirs if self.keep(here / d)]
            wd = int(self._libc.inotify_add_watch(self._fd, os.fsencode(here), TREE_CHANGES))
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
    """One inotify watcher for every service's `watch` paths, dispatching changes.

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

        def keep(folder: Path) -> bool:
            return bool(noise(watchfiles.Change.added, str(folder)))

        watcher = TreeWatcher(lambda changed: self.take({p for p in changed if keep(p)}), keep)
        if not watcher.start(paths):
            return
        try:
            await anyio.sleep_forever()
        finally:
            watcher.close()

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
