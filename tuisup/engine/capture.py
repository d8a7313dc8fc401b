"""Provides output routing for in-process services: each print lands in its own service's log.

`sys.stdout` and `sys.stderr` are replaced, once, by routers that look up the service
running the current thread or task (a context variable) and hand the text to that
service's log; text written outside any service goes where it went before. Tasks copy
context variables by themselves; threads do not, so `threading.Thread.start` is wrapped to
carry the starting service into the new thread. Writes are batched and handed to the
event loop, which alone touches the log store: one batch per stream per loop iteration,
as a process's output is one per read.
"""

from __future__ import annotations

import contextvars
import io
import logging
import sys
import threading
from asyncio import AbstractEventLoop
from collections.abc import Callable
from typing import Any, TextIO

from tuisup.engine.logs import LogStore, StreamSink

CURRENT: contextvars.ContextVar[ServiceOutput | None] = contextvars.ContextVar(
    "tuisup_service_output", default=None
)
"""The output of the service whose code is running, if any."""


PENDING_MAX = 1 << 20
"""Bytes written and not yet taken by the loop past which a writing thread waits (a pipe's)."""
WAIT_MAX = 0.5
"""Seconds a thread waits for room before it is given PENDING_MAX bytes more.

The loop may be blocked on a lock the waiting thread holds (a logging handler's, shared by
services): waiting forever would deadlock both, and dropping would lose lines. So a loop
that takes nothing lets the buffer grow by at most PENDING_MAX per WAIT_MAX.
"""


class ServiceOutput:
    """The stdout and stderr of one run of an in-process service."""

    def __init__(self, store: LogStore, name: str, loop: AbstractEventLoop) -> None:
        self.name = name
        self._sinks = {s: StreamSink(store, name, s) for s in ("stdout", "stderr")}
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._room = threading.Condition(threading.Lock())
        self._pending: dict[str, bytearray] = {}
        self._size = 0
        self._limit = PENDING_MAX
        self._scheduled = False
        self._gone = False

    def write(self, stream: str, data: bytes) -> None:
        """Take bytes written by the service, from any thread.

        They reach the log at the loop's next iteration. A thread finding PENDING_MAX bytes
        not yet taken waits for the loop (at most WAIT_MAX); the loop thread never waits,
        it takes them at once.
        """
        in_loop = threading.get_ident() == self._loop_thread
        with self._room:
            if not in_loop and self._size >= self._limit:
                self._wait_for_room()
            if self._gone:
                return  # the loop is closed: the host is gone, and so is the log
            buffer = self._pending.setdefault(stream, bytearray())
            buffer += data
            self._size += len(data)
            schedule, self._scheduled = not self._scheduled, True
        if in_loop and self._size >= PENDING_MAX:
            self._flush()
        elif schedule:
            self._schedule(in_loop)

    def _wait_for_room(self) -> None:
        """Wait for the loop to take the output, as a writer to a full pipe (locked)."""
        if self._room.wait_for(self._has_room, WAIT_MAX):
            return
        if self._loop.is_closed():
            self._lose_loop()
        else:  # the loop may be waiting for us: room for one more pipe's worth
            self._limit = self._size + PENDING_MAX

    def _has_room(self) -> bool:
        return self._size < self._limit or self._gone

    def _schedule(self, in_loop: bool) -> None:
        try:
            if in_loop:
                self._loop.call_soon(self._flush)
            else:
                self._loop.call_soon_threadsafe(self._flush)
        except RuntimeError:  # the loop is closed
            with self._room:
                self._lose_loop()

    def _lose_loop(self) -> None:
        """Nothing will take output any more: drop it, and let waiting writers go (locked)."""
        self._gone = True
        self._pending.clear()
        self._size = 0
        self._room.notify_all()

    def _flush(self) -> None:
        with self._room:
            pending, self._pending = self._pending, {}
            self._size = 0
            self._limit = PENDING_MAX
            self._scheduled = False
            self._room.notify_all()
        for stream, data in pending.items():
            self._sinks[stream].write(bytes(data))

    def close(self) -> None:
        """End of the run: write what is pending and flush partial lines (loop thread)."""
        self._flush()
        for sink in self._sinks.values():
            sink.close()


class _Router(io.TextIOBase):
    """Stands in for sys.stdout or sys.stderr."""

    def __init__(self, stream: str, fallback: TextIO) -> None:
        self._stream = stream
        self.fallback = fallback
        self.buffer = _BufferRouter(self)

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        target = CURRENT.get()
        if target is None:
            return self.fallback.write(text)
        target.write(self._stream, text.encode("utf-8", "replace"))
        return len(text)

    def write_bytes(self, data: bytes) -> int:
        target = CURRENT.get()
        if target is None:
            return self.fallback.buffer.write(data)
        target.write(self._stream, bytes(data))
        return len(data)

    def flush(self) -> None:
        if CURRENT.get() is None:
            self.fallback.flush()

    def isatty(self) -> bool:
        return False if CURRENT.get() is not None else self.fallback.isatty()

    def fileno(self) -> int:
        return self.fallback.fileno()


class _BufferRouter(io.RawIOBase):
    """Stands in for `sys.stdout.buffer`."""

    def __init__(self, router: _Router) -> None:
        self._router = router

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return self._router.write_bytes(bytes(data))


_installed = threading.Lock()
_original_start: Callable[[threading.Thread], None] | None = None


def install() -> None:
    """Route sys.stdout and sys.stderr by service; cheap to call again.

    Whoever replaced sys.stdout since (a test runner, Textual) becomes the fallback.
    """
    global _original_start
    with _installed:
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router("stdout", sys.stdout)
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router("stderr", sys.stderr)
        if _original_start is None:
            _original_start = threading.Thread.start
            threading.Thread.start = _start_with_service  # type: ignore[method-assign]


def _start_with_service(self: threading.Thread) -> None:
    output = CURRENT.get()
    if output is not None:
        run = self.run

        def run_as_service() -> None:
            CURRENT.set(output)
            run()

        self.run = run_as_service  # type: ignore[method-assign]
    assert _original_start is not None
    _original_start(self)


class LogHandler(logging.Handler):
    """Sends a service's `ctx.log` records to its stderr, wherever they are logged from."""

    def __init__(self, output: ServiceOutput) -> None:
        super().__init__(logging.INFO)
        self.output = output
        self.setFormatter(logging.Formatter("%(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        """Write one formatted record."""
        try:
            self.output.write("stderr", (self.format(record) + "\n").encode("utf-8", "replace"))
        except Exception:
            self.handleError(record)
