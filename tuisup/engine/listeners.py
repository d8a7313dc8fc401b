"""Provides the feeders of listener services: the host's events, as JSON lines, on their stdin.

A listener (a service with `listen`) is a process whose stdin is a pipe from tuisup instead
of /dev/null. For each of its runs a `Feeder` follows the bus like any other observer and
writes a `snapshot` of the services it listens to, then every event it asks for, one JSON
line each, exactly as `--no-tui --json` prints them. Reading lines is all a listener does.

A feeder never waits for its listener. It writes from the loop, without blocking, what the
pipe takes; the rest waits in a queue of at most `listen_buffer` events (references to the
bus's own events: an `output` event's lines are read from the kept log only as it is
written), its `Backlog` (`tuisup/backlog.py`): when it overflows, the queued events give way
to a `missed` line with how many the listener lost, and a snapshot of where things stand
then. A listener that never reads thus costs a bounded queue, however long the host runs.

A listener that closed its stdin, or died, ends its feeder (EPIPE) quietly; the end of a
run ends its feeder in any case, and the next run gets a new one, from a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

from tuisup.backlog import Backlog
from tuisup.engine.events import Event, Output
from tuisup.engine.executors.base import Run
from tuisup.spec import Listen, ServiceSpec
from tuisup.terminal import json_text

if TYPE_CHECKING:
    from tuisup.engine.host import Host

CHUNK_EVENTS = 256
"""Events made into text per write: enough to fill a pipe, few enough to stay small."""


class Listeners:
    """Starts a feeder for each run of a listener, and knows those that are live."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self.live: set[Feeder] = set()
        """The feeders whose run has not ended (and whose listener still reads)."""

    def feed(self, spec: ServiceSpec, fd: int, run: Run, tg: TaskGroup) -> None:
        """Feed `run` of `spec` through the write end `fd` of its stdin, which it now owns."""
        assert spec.listen is not None
        feeder = Feeder(self._host, spec.name, spec.listen, spec.listen_buffer, fd)
        self.live.add(feeder)
        tg.start_soon(self._serve, feeder, run)

    async def _serve(self, feeder: Feeder, run: Run) -> None:
        try:
            await feeder.serve(run)
        finally:
            self.live.discard(feeder)


class Feeder:
    """Writes the events one listener asks for to its stdin, never waiting for it."""

    def __init__(self, host: Host, name: str, listen: Listen, buffer: int, fd: int) -> None:
        self._host = host
        self.name = name
        """The listener's service."""
        self._fd = fd
        os.set_blocking(fd, False)
        self._loop = asyncio.get_running_loop()
        self._lines = listen.wants(Output.kind, None)
        """Whether `output` events go out, with their lines read from the kept log."""
        # The snapshot and the cursor are taken together: every event after one is after
        # the other.
        self._after = host.bus.last_seq
        self._backlog = Backlog(name, listen, buffer, host.snapshot, host.snapshot(), self._after)
        """What it asked for and has not been written yet: a snapshot first."""
        self._pending = memoryview(b"")
        """What is left to write of the text being written (a line may be cut anywhere)."""
        self._waiting = False
        """Whether the loop watches the pipe for room."""
        self._closed = False
        self._scope = anyio.CancelScope()

    async def serve(self, run: Run) -> None:
        """Feed the listener until its run ends or it stops reading for good (EPIPE)."""
        try:
            with self._scope:
                self._flush()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._follow)
                    await run.wait()
                    tg.cancel_scope.cancel()
        finally:
            self._close()

    async def _follow(self) -> None:
        async for batch in self._host.bus.stream(self._after):
            self._take(batch)

    def _take(self, batch: list[Event]) -> None:
        """Queue what the listener asks for of `batch`, write what the pipe takes."""
        if self._closed:
            return
        self._backlog.take(batch)
        if not self._waiting:
            self._flush()
        self._backlog.bound()

    def _flush(self) -> None:
        """Write what the pipe takes now; if it is full, have the loop call again when not."""
        while not self._closed:
            if not self._pending:
                text = self._next_text()
                if not text:
                    self._watch(False)
                    return
                self._pending = memoryview(text)
            try:
                written = os.write(self._fd, self._pending)
            except BlockingIOError:
                self._watch(True)
                return
            except OSError:  # EPIPE: it closed its stdin, or it is gone
                self._close()
                self._scope.cancel()
                return
            self._pending = self._pending[written:]

    def _next_text(self) -> bytes:
        """The next lines to write, as bytes: `missed` and a snapshot first, if due."""
        events: list[Event] = []
        while len(events) < CHUNK_EVENTS and (event := self._backlog.next()) is not None:
            events.append(event)
        if self._lines:
            events = self._host.lines_inline(events)
        return "".join([json_text(event.to_json()) + "\n" for event in events]).encode()

    def _watch(self, room: bool) -> None:
        """Have the loop call `_flush` when the pipe has room (True), or no more."""
        if room and not self._waiting:
            self._loop.add_writer(self._fd, self._flush)
        elif not room and self._waiting:
            self._loop.remove_writer(self._fd)
        self._waiting = room

    def _close(self) -> None:
        if self._closed:
            return
        self._watch(False)
        self._closed = True
        os.close(self._fd)
        self._backlog.clear()
        self._pending = memoryview(b"")
