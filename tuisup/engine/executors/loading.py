"""Provides LoadingRun: an in-process run whose target is made in a thread of its own first."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import anyio

from tuisup.engine.capture import CURRENT, ServiceOutput
from tuisup.engine.executors.base import Run, StartError
from tuisup.engine.status import ExitStatus
from tuisup.link import HostLink
from tuisup.service import CancellationToken, Context
from tuisup.spec import ExecutorKind, ServiceSpec

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Made:
    """A target imported and made: the callable that runs it, and how it runs."""

    call: Callable[[], Any]
    kind: ExecutorKind


class LoadingRun(Run):
    """One run of an in-process target: made in a thread of its own, then run by another Run.

    `started()` calls `make` in a daemon thread (import, `Service.__init__`), with what it
    prints going to the service's log, then `begin` starts what was made (a ThreadRun or
    a TaskRun), which the rest of the run is handed to. The supervisor bounds `started()`
    with `start_timeout`, and a stop cancels it: Python cannot interrupt an import, so the
    thread is abandoned, and makes nothing once it is done; the token is cancelled, so an
    `__init__` that waits on it ends. (`started()` is always awaited before a stop.)
    """

    def __init__(
        self,
        spec: ServiceSpec,
        output: ServiceOutput,
        make: Callable[[ServiceSpec, Context, threading.Event], Made | None],
        begin: Callable[[LoadingRun, Made], Run],
        link: HostLink | None = None,
    ) -> None:
        super().__init__()
        self.name = spec.name
        self.kind = spec.executor or ExecutorKind.THREAD  # until the target tells
        self.output = output
        self.token = CancellationToken()  # ours to cancel: reading ctx.token marks it asked for
        self.ctx = Context(spec.name, self.token, spec.cwd, link)
        self._spec = spec
        self._make = make
        self._begin = begin
        self._loading = anyio.CancelScope()
        self._gone = threading.Event()
        """Set when the start is given up: a thread still making it makes nothing more."""
        self._made: Run | None = None
        self._settled = anyio.Event()
        """Set once the run is handed over (`_made`), or given up (then it has ended)."""

    @property
    def up(self) -> bool:
        """Not before `started` has made the target."""
        return self._made is not None

    async def started(self) -> None:
        """Make the target in a thread of its own, then start it; see `Run.started`."""
        made: Made | None = None
        try:
            with self._loading:
                made = await _in_thread(self._make_here, f"tuisup:{self.name} (making)")
            if made is None:
                raise StartError("cannot start: killed while it was made")
        finally:
            if made is None:  # it raised, or a stop, start_timeout or `kill` cancelled it
                self._give_up()
        self._made = self._begin(self, made)
        self.kind = made.kind
        self._settled.set()

    def _make_here(self) -> Made | None:
        """Call `make` (in its own thread)."""
        CURRENT.set(self.output)  # what the import and __init__ print is the service's
        return self._make(self._spec, self.ctx, self._gone)

    def _give_up(self) -> None:
        self._gone.set()
        self.token.cancel()
        self.output.close()
        self._status = ExitStatus(error="not started")
        self._ended.set()
        self._settled.set()

    async def wait(self) -> ExitStatus:
        """Return once the run has ended, made or not; see `Run.wait`."""
        await self._settled.wait()
        if self._made is not None:
            return await self._made.wait()
        return await super().wait()

    async def stop(self, sig: signal.Signals, timeout: float) -> ExitStatus:
        """Stop what was made; one still being made is given up at once."""
        if self._made is not None:
            return await self._made.stop(sig, timeout)
        self.kill()
        return await self.wait()

    def kill(self) -> None:
        """Kill what was made; give up one still being made."""
        if self._made is not None:
            self._made.kill()
            return
        self._gone.set()
        self.token.cancel()
        self._loading.cancel()


async def _in_thread(call: Callable[[], T], name: str) -> T:
    """Return what `call()` returns in a thread of its own, or raise what it raises.

    A daemon thread, not one of anyio's workers: a cancellation abandons it, and an
    import that never ends must not hold up tuisup's exit either.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def main() -> None:
        try:
            result = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            outcome = partial(_fail, future, exc)
        else:
            outcome = partial(_succeed, future, result)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody awaits it
            loop.call_soon_threadsafe(outcome)

    threading.Thread(target=main, name=name, daemon=True).start()
    return await future


def _succeed(future: asyncio.Future[T], result: T) -> None:
    if not future.done():  # not abandoned
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
