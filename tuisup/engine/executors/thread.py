"""Provides the thread executor's run: a sync callable in a thread of tuisup's process."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio

from tuisup.engine.capture import CURRENT, ServiceOutput
from tuisup.engine.executors.base import KILL_GRACE
from tuisup.engine.executors.target import TargetRun, crash_status
from tuisup.engine.status import ExitStatus
from tuisup.service import CancellationToken, Context
from tuisup.spec import ExecutorKind


class ThreadRun(TargetRun):
    """One run of a callable in a daemon thread.

    A thread cannot be killed, but it can be interrupted: Python raises KeyboardInterrupt
    in it at its next bytecode, as Ctrl-C does in a script's main thread. A stop sets the
    token; a callable that never asked for it (`Context.cooperative`) is interrupted at
    once, one that asked after `stop_timeout`. A thread still running then (blocked in one
    long C call, or catching the interrupt) is abandoned: the run reports itself stuck (the
    service becomes `failed`) and nothing waits for it, neither the host's shutdown nor
    Python's exit. Threads the service started itself are not interrupted.
    """

    def __init__(
        self,
        name: str,
        call: Callable[[], Any],
        ctx: Context,
        token: CancellationToken,
        output: ServiceOutput,
        loop: asyncio.AbstractEventLoop,
        stuck: dict[str, ThreadRun],
    ) -> None:
        super().__init__(name, ExecutorKind.THREAD, call, ctx, token, output)
        self._loop = loop
        self._stuck = stuck
        self._interrupt = Interrupt()
        self.thread = threading.Thread(target=self._main, name=f"tuisup:{name}", daemon=True)

    def _main(self) -> None:
        CURRENT.set(self.output)
        try:
            with self._interrupt.armed():
                self._call()
            status = ExitStatus(code=0)
        except BaseException as exc:  # noqa: BLE001 - a service's crash is data, not our error
            if isinstance(exc, KeyboardInterrupt) and self._interrupt.fired:
                status = ExitStatus(error="interrupted")
            else:
                status = crash_status(exc, self.output)
        try:
            self._loop.call_soon_threadsafe(self._finish, status)
        except RuntimeError:
            pass  # the loop is gone: the host ended while this thread was abandoned

    def _finish(self, status: ExitStatus) -> None:
        self.output.close()
        self.ctx._end_feeds()
        if self._status is None:
            self._status = status
        if self._stuck.get(self.name) is self:
            del self._stuck[self.name]
        self._ended.set()

    async def stop(self, sig: signal.Signals, timeout: float) -> ExitStatus:
        """Set the token and interrupt the thread; abandon it if it outlives the stop."""
        self._token.cancel()
        if self.ctx.cooperative:
            await self._escalate(timeout)
            waited = timeout + KILL_GRACE
        else:
            self.kill()
            with anyio.CancelScope(shield=True), anyio.move_on_after(timeout):
                await self._ended.wait()
            waited = timeout
        if self._status is None:
            self._status = ExitStatus(error=f"did not stop within {waited:g}s", stuck=True)
            self._stuck[self.name] = self
            self._ended.set()
        return self._status

    def kill(self) -> None:
        """Raise KeyboardInterrupt in the thread (once), at its next bytecode."""
        self._token.cancel()
        self._interrupt.fire()


class Interrupt:
    """KeyboardInterrupt for one thread: raised at most once, only while it is armed.

    `PyThreadState_SetAsyncExc` makes the exception pending; the thread raises it at its
    next bytecode. Disarming cancels one still pending, so it never lands in the code that
    runs after the service's callable (recording how the run ended).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: int | None = None
        self.fired = False
        """Whether the interrupt was sent (it may have been caught, or come too late)."""

    @contextlib.contextmanager
    def armed(self) -> Iterator[None]:
        """Let `fire` interrupt the calling thread inside this block.

        Raises:
            KeyboardInterrupt: At once, if it was fired before the block began.
        """
        with self._lock:
            if self.fired:
                raise KeyboardInterrupt
            self._thread = threading.get_ident()
        try:
            yield
        finally:
            with self._lock:
                thread, self._thread = self._thread, None
                if self.fired and thread is not None:
                    _set_async_exc(thread, None)

    def fire(self) -> None:
        """Interrupt the armed thread; later calls do nothing."""
        with self._lock:
            if self.fired:
                return
            self.fired = True
            if self._thread is not None:
                _set_async_exc(self._thread, KeyboardInterrupt)


def _set_async_exc(thread: int, exc: type[BaseException] | None) -> None:
    """Make `exc` pending in `thread`, or clear what is pending with None."""
    pending = ctypes.py_object(exc) if exc is not None else None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread), pending)
