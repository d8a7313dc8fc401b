"""Provides ServiceWatch: restarting services when the files they watch change.

Each service's `watch` globs are compiled into a WatchRule; one TreeWatcher (inotify on the
loop) serves them all, and every service gets its own trailing-edge debounce.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream

from tuisup.engine.watch import Root, TreeWatcher
from tuisup.spec import ServiceSpec

LOOP_RESTARTS = 5
"""Restarts for the same changed paths, each soon after a start, that make a loop."""
LOOP_WINDOW = 1.0
"""Seconds after a service's start within which a change counts towards a loop: a
service writing into its own tree does it at once, a person saving again rarely."""


def _parts(pattern: str) -> list[str]:
    """A pattern's path parts, without the empty and `.` ones (`./src/`, `src/.`: `src`)."""
    return [part for part in pattern.split("/") if part not in ("", ".")]


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a watch pattern relative to a service's cwd.

    `*` and `?` stay within one folder, `**/` spans any number of them, and a pattern
    without wildcards names a file or a whole folder (`templates/`); `.` is the whole cwd.
    """
    pattern = "/".join(_parts(pattern)) or "**"
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
    for part in _parts(pattern):
        if any(c in part for c in "*?["):
            break
        parts.append(part)
    return cwd.joinpath(*parts)


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
        relative = _relative(str(path), str(self.cwd))
        if relative is None:
            return None
        if any(p.fullmatch(relative) for p in self.exclude):
            return None
        return relative if any(p.fullmatch(relative) for p in self.include) else None


class ServiceWatch:
    """One inotify watcher for every service's `watch` paths, dispatching changes.

    Each service gets its own trailing-edge debounce; when it fires, `on_change(service,
    paths)` is called with the relative paths that changed. What tuisup writes (the
    `ignore` folders, and the folders made on the way to them) and the usual noise (VCS
    folders, caches, virtualenvs, node_modules, editor files) never count.
    """

    def __init__(
        self,
        specs: list[ServiceSpec],
        ignore: list[Path],
        on_change: Callable[[str, list[str]], None],
        after: ServiceWatch | None = None,
    ) -> None:
        """Compile the services' rules.

        Args:
            specs: Every service; those with `watch` are watched.
            ignore: tuisup's own folders (its home beside the manifest, the log folder).
            on_change: Called with a service and its changed paths, once they settle.
            after: The watch this one replaces (a reload): what was paused, by hand or by
                the loop guard, stays paused for the services that still watch something.
        """
        self.rules = [WatchRule.of(spec) for spec in specs if spec.watch]
        self.paused: set[str] = set()
        """Services whose changes are ignored for now (by the user, or a restart loop)."""
        self.ignore = [p.resolve() for p in ignore]
        self._ignored = [str(p) for p in self.ignore]
        self.on_change = on_change
        self._pending: dict[str, set[str]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._seen: dict[Path, tuple[int, int, int]] = {}
        """(mtime, size, inode) of watched files: a change that keeps them is a chmod."""
        self._loops: dict[str, tuple[tuple[str, ...], int]] = {}
        self._scope: anyio.CancelScope | None = None
        if after is not None:
            self._carry(after)

    def _carry(self, old: ServiceWatch) -> None:
        """Keep what `old` paused, and its loop counts, for the services still watching."""
        watching = {rule.service for rule in self.rules}
        self.paused = old.paused & watching
        self._loops = {service: n for service, n in old._loops.items() if service in watching}

    def start(self, tg: TaskGroup) -> None:
        """Watch in a task of `tg` until `close`, if any service watches anything."""
        if not self.rules:
            return
        scope = self._scope = anyio.CancelScope()

        async def run() -> None:
            with scope:
                await self.run()

        tg.start_soon(run)

    def repeats(self, service: str, paths: list[str], started: float | None) -> int:
        """Count a change towards a restart loop; return how many in a row it makes.

        A loop is the same paths changing again and again, each time soon after the
        service (re)started, as when a service writes into the tree it watches.
        """
        key = tuple(paths)
        early = started is not None and time.time() - started < LOOP_WINDOW
        last_key, count = self._loops.get(service, ((), 0))
        count = count + 1 if early and key == last_key else 1
        self._loops[service] = (key, count)
        return count

    def toggle(self, service: str) -> bool | None:
        """Pause or resume one service's restarts; return `watching` after it."""
        if self.watching(service) is None:
            return None
        if service in self.paused:
            self.paused.discard(service)
            self._loops.pop(service, None)
        else:
            self.pause(service)
        return self.watching(service)

    async def run(self) -> None:
        """Watch until cancelled.

        inotify is read on the loop; what the paths it names mean (noise, tuisup's own,
        a chmod, whose) is worked out in a worker thread, as a tree arriving names
        thousands at once; only the debounces are armed on the loop.
        """
        import watchfiles

        roots = self.roots()
        noise = watchfiles.DefaultFilter(ignore_paths=[str(p) for p in self.ignore])
        await anyio.to_thread.run_sync(self._remember, [root.path for root in roots], noise)

        def keep(path: Path) -> bool:
            return bool(noise(watchfiles.Change.added, str(path)))

        send, receive = anyio.create_memory_object_stream[set[Path]](math.inf)
        watcher = TreeWatcher(send.send_nowait, keep, self.overflowed)
        if not watcher.start(roots):
            return
        try:
            await self._dispatch(receive, keep)
        finally:
            watcher.close()

    async def _dispatch(
        self, receive: MemoryObjectReceiveStream[set[Path]], keep: Callable[[Path], bool]
    ) -> None:
        """Sift the paths of each read in a worker thread, then route the changes found."""
        async with receive:
            async for paths in receive:
                while True:  # and all that came while the last ones were sifted
                    try:
                        paths |= receive.receive_nowait()
                    except anyio.WouldBlock:
                        break
                changes = await anyio.to_thread.run_sync(
                    self._sift, paths, keep, abandon_on_cancel=True
                )
                self._route(changes)

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

    def roots(self) -> list[Root]:
        """Every folder or file some rule's patterns can match inside, and its floor.

        A path that is missing is waited for through the nearest existing folder on the way
        to it, up to its service's cwd (the lowest of them, where services share a path).
        A folder watched recursively covers everything below it.
        """
        wanted = [(source, rule.cwd) for rule in self.rules for source in rule.sources]
        tops = sorted({p for p, _ in wanted if not any(q in p.parents for q, _ in wanted)})
        return [
            Root(path=top, floor=_lowest(cwd for p, cwd in wanted if p == top or top in p.parents))
            for top in tops
        ]

    def _sift(self, paths: set[Path], keep: Callable[[Path], bool]) -> list[tuple[WatchRule, str]]:
        """The changes among `paths`, each with a rule that watches it (a worker thread).

        Not noise, not tuisup's own, not a mere chmod; one sift at a time (`_seen`).
        """
        changes = []
        for path in paths:
            if not keep(path) or self._written_by_tuisup(path) or not self._changed(path):
                continue
            for rule in self.rules:
                relative = rule.matches(path)
                if relative is not None:
                    changes.append((rule, relative))
        return changes

    def _route(self, changes: list[tuple[WatchRule, str]]) -> None:
        """Note the changes for their services, and (re)arm each one's debounce once."""
        touched: dict[str, WatchRule] = {}
        for rule, relative in changes:
            if rule.service not in self.paused:
                self._pending.setdefault(rule.service, set()).add(relative)
                touched[rule.service] = rule
        if touched:
            loop = asyncio.get_running_loop()
            for rule in touched.values():
                self._arm(loop, rule)

    def _written_by_tuisup(self, path: Path) -> bool:
        """Whether tuisup wrote `path`: it is in tuisup's folders, or on the way to one.

        `mkdir -p` of a log folder makes the folders on the way first: no change either.
        """
        here = str(path)
        return any(
            _relative(here, ours) is not None or _relative(ours, here) is not None
            for ours in self._ignored
        )

    def overflowed(self) -> None:
        """The kernel dropped events: restart every watching service, as after a change."""
        loop = asyncio.get_running_loop()
        for rule in self.rules:
            if rule.service not in self.paused:
                self._pending.setdefault(rule.service, set()).add("(more files than were counted)")
                self._arm(loop, rule)

    def _arm(self, loop: asyncio.AbstractEventLoop, rule: WatchRule) -> None:
        """Restart a service's debounce for the changes noted (trailing edge)."""
        timer = self._timers.pop(rule.service, None)
        if timer is not None:
            timer.cancel()
        self._timers[rule.service] = loop.call_later(rule.debounce, self._settled, rule.service)

    def _settled(self, service: str) -> None:
        self._timers.pop(service, None)
        paths = sorted(_as_text(path) for path in self._pending.pop(service, set()))
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
        """Stop watching and forget pending changes."""
        if self._scope is not None:
            self._scope.cancel()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._pending.clear()


def _as_text(name: str) -> str:
    """A file name as text: its bytes that are not UTF-8 become U+FFFD.

    Decoded from the kernel's bytes, such a name holds lone surrogates, which no log file,
    JSON line or terminal can take; the events, markers and hooks get this instead.
    """
    if name.isascii():
        return name
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _relative(path: str, folder: str) -> str | None:
    """`path` relative to `folder` (`.` if it is the folder), or None if not inside it.

    Both are paths as `str(Path)` spells them (no `..`, no doubled or trailing `/`).
    """
    if path == folder:
        return "."
    inside = folder if folder.endswith("/") else folder + "/"  # `/` is the one that does
    return path[len(inside) :] if path.startswith(inside) else None


def _lowest(folders: Iterable[Path]) -> Path:
    """The folder nearest the filesystem's root among folders on one line of descent."""
    return min(folders, key=lambda folder: len(folder.parts))
