"""Provides the engine's clock: monotonic time, wall time, and sleeping, behind one interface.

Supervisors (backoff delays, the restart budget's window, uptimes), health checks and the
Host's dependency timer read time only through a `Clock`, so that tests can drive them with
a clock that moves when told to (see tests/unit/fakes.py) instead of waiting on real time.
"""

from __future__ import annotations

import time
from typing import Protocol

import anyio


class Clock(Protocol):
    """Where the engine's time comes from."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (durations, deadlines)."""
        ...

    def time(self) -> float:
        """Unix time (what a user is shown: when a run started, when the next one comes)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once `seconds` have passed on this clock."""
        ...


class SystemClock:
    """The real clocks, and anyio's sleep."""

    def monotonic(self) -> float:
        """`time.monotonic()`."""
        return time.monotonic()

    def time(self) -> float:
        """`time.time()`."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """`anyio.sleep(seconds)`."""
        await anyio.sleep(seconds)


SYSTEM = SystemClock()
"""The clock of a Host that was given none."""
