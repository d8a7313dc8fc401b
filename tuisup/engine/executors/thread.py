"""Provides the thread executor's run: a sync callable in a thread of tuisup's process."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from typing import Any

import anyio

from tuisup.engine.capture import CURRENT, ServiceOutput
from tuisup.engine.executors.base import ExitStatus, Run
from tuisup.engine.executors.crash import crash_status
from tuisup.service import Context
from tuisup.spec import ExecutorKind


class ThreadRun(Run):
    """One run of a callable in a daemon thread.

    A thread cannot be killed: stopping sets the token and waits `stop_timeout`. A thread
    that is still running then is abandoned: the run reports itself stuck (the service
    becomes `failed`) and nothing waits for it, neither the host's shutdown nor Python's
    exit.
    """

    def __init__(
        self,
        name: str,
        call: Callable[[], Any],
        ctx: Context,
        output: ServiceOutput,
        loop: asyncio.AbstractEventLoop,
        stuck: dict[str, ThreadRun],
    ) -> None:
        super().__init__()
        self.name = name
        self.kind = ExecutorKind.THREAD
        self.ctx = ctx
        self._call = call
        self._output = output
        self._loop = loop
        self._stuck = stuck
        self.thread = threading.Thread(target=self._main, name=f"tuisup:{name}", daemon=True)

    def _main(self) -> None:
        CURRENT.set(self._output)
        try:
            self._call()
            status = ExitStatus(code=0)
        except BaseException as exc:  # noqa: BLE001 - a service's crash is data, not our error
            status = crash_status(exc, self._output)
        try:
            self._loop.call_soon_threadsafe(self._finish, status)
        except RuntimeError:
            pass  # the loop is gone: the host ended while this thread was abandoned

    def _finish(self, status: ExitStatus) -> None:
        self._output.close()
        if self._status is None:
            self._status = status
        if self._stuck.get(self.name) is self:
            del self._stuck[self.name]
        self._ended.set()

    async def stop(self, sig: signal.Signals, timeout: float) -> ExitStatus:
        """Set the token and wait; a thread still running after `timeout` is abandoned."""
        self.ctx.token.cancel()
        with anyio.CancelScope(shield=True), anyio.move_on_after(timeout):
            await self._ended.wait()
        if self._status is None:
            self._status = ExitStatus(error=f"did not stop within {timeout:g}s", stuck=True)
            self._stuck[self.name] = self
            self._ended.set()
        return self._status

    def kill(self) -> None:
        """Threads cannot be killed; ask once more."""
        self.ctx.token.cancel()
