"""Provides the async executor's run, and the watchdog that names who blocks the loop.

An async service is a coroutine run as a task on tuisup's own event loop.
"""

from __future__ import annotations

import asyncio
import math
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

import anyio

from tuisup.engine.capture import CURRENT, ServiceOutput
from tuisup.engine.executors.target import TargetRun, crash_status
from tuisup.engine.status import ExitStatus
from tuisup.service import CancellationToken, Context
from tuisup.spec import ExecutorKind

STALL = 1.0
"""Seconds the loop may be blocked before the watchdog names the service responsible."""
PING_EVERY = 0.5
"""Seconds between two checks, while async services run (and only then)."""


class TaskRun(TargetRun):
    """One run of a coroutine function as a task of the host's task group.

    A stop sets the token. A coroutine that never asked for it (`Context.cooperative`)
    is cancelled at once as asyncio does it, one CancelledError, so its `finally` blocks
    run and may await; one that asked is cancelled by force only after `stop_timeout`.
    """

    def __init__(
        self,
        name: str,
        call: Callable[[], Awaitable[Any]],
        ctx: Context,
        token: CancellationToken,
        output: ServiceOutput,
        watchdog: LoopWatchdog,
    ) -> None:
        super().__init__(name, ExecutorKind.ASYNC, call, ctx, token, output)
        self._watchdog = watchdog
        self._scope = anyio.CancelScope()  # made now: a stop before the task begins holds
        self._task: asyncio.Task[Any] | None = None
        self._cancel_sent = False

    async def main(self) -> None:
        """Run the coroutine to its end, recording how it ended."""
        CURRENT.set(self.output)
        self._task = asyncio.current_task()
        self._watchdog.attach(self)
        try:
            with self._scope:
                self._status = await self._outcome()
            if self._scope.cancelled_caught:
                self._status = ExitStatus(error="cancelled: it did not stop by itself")
        finally:
            self._watchdog.detach(self)
            self.output.close()
            self.ctx._end_feeds()
            if self._status is None:
                self._status = ExitStatus(error="cancelled with tuisup")
            self._ended.set()

    async def _outcome(self) -> ExitStatus:
        """Await the coroutine and say how it ended; a cancellation not ours propagates.

        A CancelledError that no scope sent (it awaited a task it cancelled, cancelled
        itself, or raised one) is its own crash: let through, it would cancel the host's
        tasks, every service's. A scope that is cancelled (its own on a kill, the host's
        at shutdown) is what anyio says, not the task's count of requests, which a
        coroutine that swallowed a cancellation leaves raised.
        """
        try:
            await self._call()
        except asyncio.CancelledError as exc:
            if anyio.current_effective_deadline() == -math.inf:
                raise  # forced, or the host's own cancellation: not a plain stop
            if self._cancel_sent:
                return ExitStatus(error="cancelled")
            return crash_status(exc, self.output)
        except BaseException as exc:  # noqa: BLE001 - a crash is data
            return crash_status(exc, self.output)
        finally:
            if self._cancel_sent and self._task is not None:
                # Our cancel is accounted for: anyio's scopes count only their own.
                self._task.uncancel()
        return ExitStatus(code=0)

    async def stop(self, sig: signal.Signals, timeout: float) -> ExitStatus:
        """Set the token; cancel the task at once, or after `timeout` if it cooperates."""
        self._token.cancel()
        if not self.ctx.cooperative:
            self._cancel()
        await self._escalate(timeout)
        if self._status is None:
            return ExitStatus(error="did not end when cancelled", stuck=True)
        return self._status

    def _cancel(self) -> None:
        """Cancel the coroutine the way asyncio does: once, at the await it is in."""
        if self._task is None:
            self._scope.cancel()  # not begun yet: it never will
        elif not self._cancel_sent and not self._ended.is_set():
            self._cancel_sent = True
            self._task.cancel()

    def kill(self) -> None:
        """Cancel the task now, at every await from here on (anyio's cancel scope)."""
        self._token.cancel()
        self._scope.cancel()


class LoopWatchdog:
    """Notices the event loop blocked for over STALL seconds and says where, and by whom.

    A thread, started while async services run, pings the loop; when a ping goes
    unanswered, it writes to the guilty service's log where its code held the loop.

    It exists only while an async service runs, so an idle host has no periodic wake-ups.
    """

    def __init__(self) -> None:
        self._runs: set[TaskRun] = set()
        self._quit = threading.Event()
        self._thread: threading.Thread | None = None

    def attach(self, run: TaskRun) -> None:
        """Watch the loop for as long as `run` runs (called in the loop)."""
        self._runs.add(run)
        # A thread told to quit may not have ended yet (a quick restart): it will, so a
        # new one watches from now on, with its own quit event.
        if self._thread is None or self._quit.is_set():
            loop = asyncio.get_running_loop()
            self._quit = threading.Event()
            self._thread = threading.Thread(
                target=self._watch,
                args=(loop, threading.get_ident(), self._quit),
                name="tuisup:watchdog",
                daemon=True,
            )
            self._thread.start()

    def detach(self, run: TaskRun) -> None:
        """Stop watching for `run`; the thread ends with the last run."""
        self._runs.discard(run)
        if not self._runs:
            self._quit.set()

    def _watch(self, loop: Any, loop_thread: int, quit_: threading.Event) -> None:
        while not quit_.is_set():
            pong = threading.Event()
            try:
                loop.call_soon_threadsafe(pong.set)
            except RuntimeError:
                return  # the loop is closed
            if pong.wait(STALL):
                quit_.wait(PING_EVERY)
                continue
            began = time.monotonic() - STALL
            culprit = _culprit(sys._current_frames().get(loop_thread))
            while not pong.wait(0.1) and not quit_.is_set():
                pass
            if culprit is not None:
                run, where = culprit
                seconds = time.monotonic() - began
                note = (
                    f"tuisup: {run.name} blocked the event loop for {seconds:.1f}s at {where}; "
                    "an async service must await, not block (run blocking code in a thread)\n"
                )
                run.output.write("stderr", note.encode())


def _culprit(frame: FrameType | None) -> tuple[TaskRun, str] | None:
    """Find the TaskRun whose coroutine holds the loop, and where it is."""
    innermost = frame
    while frame is not None:
        if frame.f_code is TaskRun.main.__code__:
            run = frame.f_locals.get("self")
            if isinstance(run, TaskRun) and innermost is not None:
                code = innermost.f_code
                return run, f"{code.co_filename}:{innermost.f_lineno} in {code.co_name}"
        frame = frame.f_back
    return None
