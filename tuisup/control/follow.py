"""Provides `tuisup logs` and its LogFollower: the kept lines of services, then the new ones.

Lines are numbered across every service in the order the host kept them, so lines of
several services merge by number, and a line is printed once: the follower remembers the
last number printed, and skips what it has seen when the history and the stream overlap.
A client that falls behind is told (`missed`), prints a mark where lines may be missing,
and reads again what the host still keeps after the last line it printed.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from typing import TYPE_CHECKING, Any, cast

from tuisup.control.client import RemoteHost, RemoteSubscription
from tuisup.control.verbs import FAILED, OK, Failed, NoHost, connect, dump, out, say
from tuisup.headless import Printer, use_colour
from tuisup.model import LogBatch
from tuisup.model import events as ev
from tuisup.model.logs import last_lines
from tuisup.model.record import replace
from tuisup.terminal import one_line

if TYPE_CHECKING:
    from tuisup.api import HostAPI


async def logs(options: argparse.Namespace) -> int:
    """`tuisup logs [-f] [-n N] [--since T] [--grep RE] [--timestamps] [--json] [NAME...]`.

    With a tuisup running, its kept lines (and, with -f, those that come); with none, the
    log files, rotated ones included (`control.logread`).
    """
    _filters(options)
    try:
        host = await connect(options)
    except NoHost:
        return files_logs(options)
    try:
        follower = LogFollower(host, options.names or None, options)
        await follower.history(options.lines)
        if not options.follow:
            return OK
        return await follower.follow()
    finally:
        await host.close()


def _filters(options: argparse.Namespace) -> None:
    """Read `--since` and `--grep` into `options.since_ts` and `options.pattern`.

    Raises:
        Failed: One of them cannot be read.
    """
    options.since_ts = options.pattern = None
    if options.since is not None:
        from tuisup.control.logread import since_time

        try:
            options.since_ts = since_time(options.since, time.time())
        except ValueError as exc:
            raise Failed(f"tuisup: --since: {exc}") from None
    if options.grep is not None:
        try:
            options.pattern = re.compile(options.grep)
        except re.error as exc:
            raise Failed(f"tuisup: --grep: {exc}") from None


class LogFollower:
    """Prints the kept lines of some services (or all, merged), then follows them."""

    def __init__(self, host: RemoteHost, names: list[str] | None, options: argparse.Namespace):
        """A follower of `names` (None: every service) on `host`, printing as `options` say."""
        self.host = host
        self.names = names
        self.json = bool(options.json)
        self.follows = bool(options.follow)
        self.colour = not self.json and not options.no_color and use_colour(sys.stdout)
        self.timestamps = bool(options.timestamps)
        self.since: float | None = getattr(options, "since_ts", None)
        """Only lines read at or after this time (`--since`)."""
        self.grep: re.Pattern[str] | None = getattr(options, "pattern", None)
        """Only lines in which this is found (`--grep`)."""
        self.upto = 0
        """The number of the last line printed."""
        self.printer: Printer | None = None
        self.subscription: RemoteSubscription | None = None
        self._pending: list[LogBatch] = []
        """Lines taken from the stream, not printed yet (printed once per batch)."""

    async def history(self, limit: int | None) -> None:
        """Print the kept lines (the last `limit`); when following, subscribe first.

        Raises:
            UnknownService: One of the names is not a service.
        """
        if self.follows:  # first: nothing kept between the read and the stream is lost
            self.subscription = await self.host.subscribe(lines=True, services=self.names)
        filtered = self.since is not None or self.grep is not None
        batches = await self._read(0, None if filtered else limit)
        top = batches[-1].end - 1 if batches else 0
        if filtered:
            batches = self._filtered(batches)
            batches = last_lines(batches, limit) if limit is not None else batches
        known = list(self.names or self.host.snapshot() or {b.service for b in batches})
        self.printer = Printer(
            self.host,
            json_mode=False,
            colour=self.colour,
            width=max((len(name) for name in known), default=6),
            markers=True,
            timestamps=self.timestamps,
        )
        self._print(batches)
        self.upto = max(self.upto, top)  # what was filtered out counts as seen too

    async def follow(self) -> int:
        """Print new lines until the host stops (0) or the connection is lost (1)."""
        assert self.subscription is not None
        async for batch in self.subscription:
            for event in batch:
                if isinstance(event, ev.Output):
                    self._take(event)
                elif isinstance(event, ev.Missed):
                    await self._caught_up(event)
                elif isinstance(event, ev.HostStopped):
                    self._print(self._pending)
                    return OK
            self._print(self._pending)
        say(f"tuisup: {one_line(str(self.host.lost))}")
        return FAILED

    async def _read(self, since: int, limit: int | None) -> list[LogBatch]:
        """The kept lines after `since` of the services followed, merged by number."""
        names = self.names
        if names is None or len(names) == 1:
            return await self.host.logs(names[0] if names else None, since, limit)
        found = await asyncio.gather(*(self.host.logs(name, since, limit) for name in names))
        # A replicated service's name and one of its replicas' both bring that one's lines.
        unique = {(b.service, b.first): b for each in found for b in each}
        batches = sorted(unique.values(), key=lambda b: b.first)
        return last_lines(batches, limit) if limit is not None else batches

    def _take(self, event: ev.Output) -> None:
        """Keep an output event's lines to print; where some are missing, mark it, in place."""
        if event.dropped:
            self._print(self._pending)  # the lines before the gap, before its mark
            self._mark({"service": event.service, "dropped": event.dropped})
        first = event.first_line + (event.dropped or 0)
        lines = list(event.lines or ())
        batch = LogBatch(
            service=event.service, stream=event.stream, first=first, ts=event.ts, lines=lines
        )
        self._pending.append(batch)

    async def _caught_up(self, missed: ev.Missed) -> None:
        """Say that events went unseen, then print what the host still keeps of them."""
        self._print(self._pending)
        self._mark({"event": "missed", "seq": missed.seq, "count": missed.count})
        self._print(await self._read(self.upto, None))

    def _filtered(self, batches: list[LogBatch]) -> list[LogBatch]:
        """The lines of `batches` that `--since` and `--grep` let through."""
        if self.since is None and self.grep is None:
            return batches
        since, grep = self.since or 0.0, self.grep
        kept = []
        for batch in batches:
            if batch.ts < since:
                continue
            if grep is not None:
                lines = [line for line in batch.lines if grep.search(line)]
                if not lines:
                    continue
                batch = replace(batch, lines=lines)
            kept.append(batch)
        return kept

    def _mark(self, data: dict[str, Any]) -> None:
        """Say where lines may be missing: in the stream of lines, where it happened."""
        if self.json:
            dump(data)
        elif "dropped" in data:
            noun = "line" if data["dropped"] == 1 else "lines"
            out(f"[tuisup: {data['dropped']} {noun} of {data['service']} left the log unread]\n")
        else:
            out(f"[tuisup: fell behind by {data['count']} events; what is still kept follows]\n")

    def _print(self, batches: list[LogBatch]) -> None:
        """Print the lines not printed yet (`batches` is emptied: it may be the pending list)."""
        fresh = [b.after(self.upto) for b in batches if b.end - 1 > self.upto]
        batches.clear()
        if not fresh:
            return
        self.upto = fresh[-1].end - 1
        fresh = self._filtered(fresh)
        if not fresh:
            return
        if self.json:
            out("".join(_json_line(batch) for batch in fresh))
            return
        assert self.printer is not None
        out(self.printer.render([_as_event(batch) for batch in fresh]))


def files_logs(options: argparse.Namespace) -> int:
    """`tuisup logs` with no tuisup running: print the log files' lines (rotated ones too)."""
    from pathlib import Path

    from tuisup.control import logread
    from tuisup.control.verbs import NO_HOST, no_host_message
    from tuisup.manifest import ManifestError, load_manifest
    from tuisup.model import UnknownService
    from tuisup.terminal import text_lines

    try:
        manifest = load_manifest(options.file)
    except ManifestError as exc:
        say("\n".join(text_lines(str(exc))))
        return FAILED
    folder = manifest.settings.log_dir
    if folder is None:
        say(f"{no_host_message(options)}; and log_dir = false: there are no log files")
        return NO_HOST
    # A replicated service's name stands for its replicas, as for a running host.
    wanted: list[str] = options.names or list(manifest.services)
    names = list(dict.fromkeys(i for name in wanted for i in manifest.instances(name) or [name]))
    for name in names:
        if name not in manifest.services and not logread.files_of(Path(folder), name):
            raise UnknownService.named(name, list(manifest.services))
    batches = logread.read_logs(
        folder, names, limit=options.lines, since=options.since_ts or 0.0, grep=options.pattern
    )
    _print_batches(batches, names, options)
    if options.follow:  # what the files hold is printed, but nothing comes after it
        say(no_host_message(options))
        return NO_HOST
    return OK


class _NoViews:
    """Where a printer of files would look for services' views: there are none."""

    def snapshot(self) -> dict[str, Any]:
        return {}


def _print_batches(batches: list[LogBatch], names: list[str], options: argparse.Namespace) -> None:
    if options.json:
        out("".join(_json_line(batch) for batch in batches))
        return
    printer = Printer(
        cast("HostAPI", _NoViews()),
        json_mode=False,
        colour=not options.no_color and use_colour(sys.stdout),
        width=max((len(name) for name in names), default=6),
        markers=True,
        timestamps=bool(options.timestamps),
    )
    out(printer.render([_as_event(batch) for batch in batches]))


def _json_line(batch: LogBatch) -> str:
    from tuisup.terminal import json_text

    return json_text(batch.to_json()) + "\n"


def _as_event(batch: LogBatch) -> ev.Output:
    """A batch of kept lines as the output event the printer prints."""
    return ev.Output(
        seq=0,
        ts=batch.ts,
        service=batch.service,
        stream=batch.stream,
        first_line=batch.first,
        count=len(batch.lines),
        lines=tuple(batch.lines),
    )
