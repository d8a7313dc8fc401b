"""Measures the event loop's longest stall: the most time it went without running a callback."""

from __future__ import annotations

import asyncio
import gc
import time
from types import TracebackType

STEP = 0.005
"""Seconds between two ticks: the loop is asked to run a callback this often."""


class LoopStalls:
    """`with LoopStalls() as stalls: ...`, then `stalls.longest` is the worst lateness of a tick.

    A chain of loop callbacks, no task and no thread: each tick schedules the next one STEP
    later, and notes how much later than that it actually ran. The garbage collector is
    paused meanwhile: a full collection of a test process's heap holds every thread for
    40-60 ms, whatever code triggers it, and would be measured instead of the code.
    """

    def __init__(self) -> None:
        self.longest = 0.0
        """Seconds the loop ran a tick late, at worst, while measured."""
        self._loop = asyncio.get_running_loop()
        self._last = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._collecting = True

    def __enter__(self) -> LoopStalls:
        self._collecting = gc.isenabled()
        gc.disable()
        self._last = time.monotonic()
        self._handle = self._loop.call_later(STEP, self._tick)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._tick_now()
        if self._collecting:
            gc.enable()

    def _tick(self) -> None:
        self._tick_now()
        self._handle = self._loop.call_later(STEP, self._tick)

    def _tick_now(self) -> None:
        now = time.monotonic()
        self.longest = max(self.longest, now - self._last - STEP)
        self._last = now
