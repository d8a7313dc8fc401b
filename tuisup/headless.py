"""Provides `tuisup --no-tui`: a subscriber that prints service output and lifecycle lines.

Text mode prints `web    | line` with a stable colour per service when stdout is a terminal
(plain when piped or with NO_COLOR) and tuisup's own lines (`web started (pid 1234)`).
JSON mode prints one object per event per line. Writes to a pipe or a terminal happen in a
worker thread, so a slow reader of our stdout makes the printer fall behind, never the host;
a file takes them at once.

Whatever came from a service, a check, a file or the manifest is made safe for the terminal
as it is printed (`tuisup.terminal`): output keeps only colours, tuisup's own lines keep no
escape at all and stay one line each, and JSON keeps the data exact, C1 controls escaped.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import sys
import time
import zlib
from collections.abc import Iterable
from typing import TextIO

from tuisup.api import HostAPI, Subscription
from tuisup.model import ACTIVE, Event, ExitStatus, Health, ServiceState, ServiceView
from tuisup.model import events as ev
from tuisup.model.logs import MARKER_STREAM
from tuisup.terminal import json_text, one_line, output_line, unsafe

_COLOURS = (36, 33, 32, 35, 34, 91, 96, 93, 92, 95, 94)


class Printer:
    """Turns batches of events into text for stdout."""

    def __init__(
        self,
        host: HostAPI,
        *,
        json_mode: bool,
        colour: bool,
        width: int | None = None,
        markers: bool = False,
        timestamps: bool = False,
    ) -> None:
        """A printer of `host`'s events.

        Args:
            host: Whose events (its snapshot gives the names, and the states after `missed`).
            json_mode: One JSON object per event.
            colour: Colour the names (and keep the colours of the output).
            width: The width names are padded to (default: the longest in the snapshot).
            markers: Print tuisup's own lines of a log too (`── run 4 · ...`): `tuisup logs`.
            timestamps: Begin each output line with the time it was kept.
        """
        self.host = host
        self.json_mode = json_mode
        self.colour = colour
        self.markers = markers
        self.timestamps = timestamps
        self._width = width or max((len(n) for n in host.snapshot()), default=6)
        self._prefixes: dict[str, str] = {}
        self._pending_exit: dict[str, str] = {}

    def _prefix(self, name: str) -> str:
        """`name | ` padded to the longest name, coloured; services may come with a reload."""
        prefix = self._prefixes.get(name)
        if prefix is None:
            prefix = self._prefixes[name] = self._paint(name, f"{name:<{self._width}} | ")
        return prefix

    def _paint(self, name: str, text: str) -> str:
        if not self.colour:
            return text
        return f"\x1b[{_COLOURS[zlib.crc32(name.encode()) % len(_COLOURS)]}m{text}\x1b[0m"

    def render(self, events: list[Event]) -> str:
        """Return the text for one batch of events (output events carry their lines)."""
        out: list[str] = []
        for event in events:
            if self.json_mode:
                out.append(json_text(event.to_json()))
                if isinstance(event, ev.Missed):  # what the unseen events led to
                    out.append(json_text(self._snapshot(event).to_json()))
            elif isinstance(event, ev.Output):
                if self.markers or event.stream != MARKER_STREAM:
                    out.extend(self._output(event))
            else:
                out.extend(self._lifecycle(event))
        return "\n".join(out) + "\n" if out else ""

    def to_stderr(self, events: list[Event]) -> str:
        """Return the warnings of one batch of events, for stderr (in JSON mode too).

        An unwritable log file is said here once per episode, so that it is not lost among
        the service's output (its marker line is in the service's log, not on stdout).
        """
        out = [
            f"tuisup: {event.service}: {one_line(event.message)}\n"  # it names a path
            for event in events
            if isinstance(event, ev.LogFileChanged)
        ]
        return "".join(out)

    def _output(self, event: ev.Output) -> Iterable[str]:
        prefix = self._prefix(event.service)
        if event.dropped:
            noun = "line" if event.dropped == 1 else "lines"
            yield f"{prefix}[tuisup: {event.dropped} {noun} not shown: the printer fell behind]"
        lines = list(event.lines or ())
        if not lines:
            return
        if unsafe("\n".join(lines)):
            lines = [output_line(line, keep_colour=self.colour) for line in lines]
        if self.timestamps:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.ts))
            prefix += f"{stamp}.{int(event.ts % 1 * 1000):03d} "
        yield prefix + ("\n" + prefix).join(lines)

    def _lifecycle(self, event: Event) -> Iterable[str]:
        if isinstance(event, ev.StateChanged):
            yield from self._state(event)
        elif isinstance(event, ev.HealthChanged):
            if event.health is Health.HEALTHY:
                yield self._say(f"{event.service} is healthy")
            elif event.health is Health.UNHEALTHY:
                checks = f"{event.failures} failed checks"
                yield self._say(f"{event.service} is unhealthy: {event.reason} ({checks})")
        elif isinstance(event, ev.RestartScheduled):
            ended = self._pending_exit.pop(event.service, f"{event.service} exited")
            yield self._say(f"{ended}; restarting in {event.delay:.1f}s (attempt {event.attempt})")
        elif isinstance(event, ev.FilesChanged):
            yield self._files_changed(event)
        elif isinstance(event, ev.WatchToggled):
            how = "watching its files again" if event.watching else "watching its files paused"
            yield self._say(f"{event.service}: {how}")
        elif isinstance(event, ev.GroupRestarting):
            yield self._say(event.describe())
        elif isinstance(event, ev.GroupFailed):
            doing = "stopping tuisup" if event.on_failure == "shutdown" else "its members stopped"
            yield self._say(f"{event.reason}: {doing}")
        elif isinstance(event, ev.HookRan):
            # Its output is printed as the service's; only a run that failed says more.
            if not event.succeeded:
                yield self._say(f"{event.service}: {event.describe()}")
        else:
            yield from self._host_wide(event)

    def _host_wide(self, event: Event) -> Iterable[str]:
        """The lines of events about the host rather than one service."""
        if isinstance(event, ev.HostStopping):
            noun = "service" if event.count == 1 else "services"
            yield self._say(f"tuisup: stopping {event.count} {noun} ({event.reason})")
        elif isinstance(event, ev.HostStopped):
            yield self._say("tuisup: every service stopped")
        elif isinstance(event, ev.ManifestReloaded):
            yield self._say(f"tuisup: manifest reloaded: {event.summary()}")
        elif isinstance(event, ev.Scaled):
            yield self._say(f"tuisup: {scaled_line(event)}")
        elif isinstance(event, ev.ManifestInvalid):
            yield self._say("tuisup: manifest not applied, every service left as it was:")
            yield from (self._say(f"  {line}") for line in event.error.splitlines())
        elif isinstance(event, ev.Missed):
            yield from self._missed(event)
        elif isinstance(event, ev.ControlRefused):
            who = f"uid {event.uid} (pid {event.pid})"
            yield self._say(f"tuisup: refused a control connection from {who}: not this user")

    def _files_changed(self, event: ev.FilesChanged) -> str:
        if event.paused:
            return self._say(f"{event.service}: {event.paused}")
        shown = ", ".join(event.paths[:3])
        if len(event.paths) > 3:
            shown += f" and {len(event.paths) - 3} more"
        return self._say(f"{event.service} restarting: {shown} changed")

    def _missed(self, event: ev.Missed) -> Iterable[str]:
        """Say how many events went unseen, and where every service stands after them."""
        yield self._say(f"tuisup: {event.count} events not shown: the printer fell behind; now:")
        for view in self.host.snapshot().values():
            yield self._say(f"  {now_line(view)}")

    def _snapshot(self, missed: ev.Missed) -> ev.Snapshot:
        views = tuple(self.host.snapshot().values())
        return ev.Snapshot(seq=missed.seq, ts=time.time(), services=views)

    def _state(self, event: ev.StateChanged) -> Iterable[str]:
        name = event.service
        ended = None
        if event.runtime is not None:
            status = ExitStatus(code=event.exit_code, signal=event.signal, error=event.error)
            ended = f"{name} exited with {status.describe()} after {event.runtime:.1f}s"
        match event.state:
            case ServiceState.RUNNING:
                how = f"pid {event.pid}" if event.pid else f"{event.executor} in tuisup"
                yield self._say(f"{name} started ({how})")
            case ServiceState.WAITING if event.old is not ServiceState.WAITING:
                yield self._say(f"{name} {event.reason}")
            case ServiceState.BACKOFF:
                if event.reason:  # not an exit: restarted as unhealthy
                    self._pending_exit[name] = f"{name} {event.reason}"
                else:
                    self._pending_exit[name] = ended or f"{name} exited"
            case ServiceState.EXITED:
                yield self._say(ended or f"{name} exited")
            case ServiceState.FAILED:
                if ended:
                    yield self._say(ended)
                yield self._say(f"{name} failed: {event.reason}")
            case ServiceState.STOPPED if event.runtime is not None:
                yield self._say(f"{name} stopped after {event.runtime:.1f}s")

    def _say(self, text: str) -> str:
        """Return one of tuisup's own lines, made safe whole.

        Its reasons, errors and paths come from services, checks, files and the manifest,
        and each of tuisup's lines stays one line.
        """
        text = one_line(text)
        return f"\x1b[1m{text}\x1b[0m" if self.colour else text


def now_line(status: ServiceView) -> str:
    """One service's state in a line: `web running (pid 42)`, `db failed: reason`."""
    text = f"{status.name} {status.state}"
    if status.pid is not None:
        text += f" (pid {status.pid})"
    if status.health is not None:
        text += f", {status.health}"
    if status.reason:
        text += f": {status.reason}"
    return text


def use_colour(stream: TextIO) -> bool:
    """Colour only a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


async def follow(
    host: HostAPI, printer: Printer, subscription: Subscription, out: TextIO
) -> int | None:
    """Print every batch until the host stops; say how it ended if every service ended.

    When every service has ended by itself (none will restart), the host is shut down.

    Returns:
        None when the host was stopped (by a signal: the caller says what that means);
        0 when every service ended by itself with success, 1 when one of them failed, or
        a group with `on_failure = "shutdown"` gave up.
    """
    import anyio  # here: the printer's rendering serves the CLI verbs, which load no anyio

    status: int | None = None
    stdout, stderr = _Output(out), _Output(sys.stderr)
    async with anyio.create_task_group() as tg:
        async for events in subscription:
            await stdout.write(printer.render(events))
            await stderr.write(printer.to_stderr(events))
            if any(isinstance(e, ev.GroupFailed) and e.on_failure == "shutdown" for e in events):
                status = 1  # a group gave up and took tuisup down: what a CI script must see
            if any(isinstance(e, ev.HostStopped) for e in events):
                break
            # Ended by itself: a service stopped by a request (`tuisup stop --all`) leaves
            # the host up, to start it again.
            ended = any(isinstance(e, ev.StateChanged) and e.state in _ENDED for e in events)
            if ended and status is None and not host.stopping and _settled(host):
                status = _final_status(host)
                tg.start_soon(host.shutdown, "every service has ended")
    return status


_ENDED = frozenset({ServiceState.EXITED, ServiceState.FAILED})
"""The states in which a service has ended by itself (or given up)."""


AT_ONCE_MAX = 16 * 1024
"""Characters a file is given from the loop itself; more go through the worker thread."""


class _Output:
    """Where the printer's text goes: a pipe or a terminal from a thread; a file at once.

    A pipe's or a terminal's reader may be slow (or paused): writes to them go through a
    worker thread, so that the printer falls behind, never the host. A file (or /dev/null)
    takes a short write at once: the thread's round trip on every small batch slowed a
    100-service start by a fifth. A long one (a flood of output) still goes through the
    thread, whose write then overlaps the loop's reading (a 500,000-line flood took 0.35 s
    written from the loop, 0.24 s from the thread).
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        try:
            mode = os.fstat(stream.fileno()).st_mode
        except (OSError, ValueError, io.UnsupportedOperation):  # no descriptor: a test's
            mode = 0
        self.at_once = stat.S_ISREG(mode) or (stat.S_ISCHR(mode) and not stream.isatty())
        self._failed = False

    async def write(self, text: str) -> None:
        if not text:
            return
        if self.at_once and len(text) <= AT_ONCE_MAX:
            self._write(text)
        else:
            import anyio

            await anyio.to_thread.run_sync(self._write, text)

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except BrokenPipeError:
            # Our reader went away (`| head`); keep running the services, print nothing more.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except OSError as exc:  # a full disk, say: said once; the services keep running
            if not self._failed:
                self._failed = True
                with contextlib.suppress(OSError):
                    sys.stderr.write(f"tuisup: cannot write the output: {exc.strerror or exc}\n")


def _settled(host: HostAPI) -> bool:
    """Whether every service has ended by itself and none will restart."""
    return not any(s.state in ACTIVE for s in host.snapshot().values())


def _final_status(host: HostAPI) -> int:
    for status in host.snapshot().values():
        if status.state is ServiceState.FAILED:
            return 1
        last = status.last_exit
        if status.state is ServiceState.EXITED and last is not None:
            if not last.status.succeeded(status.spec.success_exit_codes):
                return 1
    return 0


def scaled_line(event: ev.Scaled) -> str:
    """`scaled worker to 5 (added worker.3, worker.4)`."""
    moved = [
        f"{what} {', '.join(names)}"
        for what, names in (("added", event.added), ("removed", event.removed))
        if names
    ]
    return f"scaled {event.service} to {event.replicas} ({'; '.join(moved) or 'as it was'})"
