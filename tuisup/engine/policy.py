"""Provides Restarts: what follows a run that ended by itself (policy, backoff and budget).

It is the Supervisor's arithmetic, kept apart from its actor so that it reads on its own
and is tested with a clock that moves when told to:

- the restart policy (compose's words) says whether an ended run is followed by another;
- the backoff says after how long; a run that lasted RESET_AFTER seconds starts it afresh;
- the budget says when to give up: more than `max_restarts` failures within
  `restart_window` seconds, and the service is `failed`.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from tuisup.engine.backoff import Backoff
from tuisup.engine.clock import Clock
from tuisup.model.record import Record
from tuisup.spec import RestartPolicy, ServiceSpec

if TYPE_CHECKING:
    import random

RESET_AFTER = 10.0
"""Seconds a run must last for the next failure to start the backoff from its first delay."""


class Next(Record):
    """What follows an ended run: another after `delay` seconds, or nothing (`given_up`)."""

    delay: float = 0.0
    attempt: int = 0
    """How many restarts this one makes since the backoff was last reset."""
    given_up: str | None = None
    """Why not, when the budget is spent (`5 restarts in 60s`)."""


class Restarts:
    """One service's restart policy, backoff and restart budget."""

    def __init__(self, spec: ServiceSpec, clock: Clock, rng: random.Random | None = None) -> None:
        self.spec = spec
        self._clock = clock
        self._rng = rng
        self._backoff = self._new_backoff(spec)
        self._failures: deque[float] = deque()
        """When each counted failure happened (monotonic), oldest first."""

    def wanted(self, succeeded: bool) -> bool:
        """Whether a run that ended by itself (with success or not) is followed by another."""
        return RestartPolicy(self.spec.restart).restarts(succeeded)

    def after(self, runtime: float, *, failed: bool) -> Next:
        """Count an ended run (a failure, or a clean end that restarts) and say what follows."""
        spec = self.spec
        if runtime >= RESET_AFTER:
            self._backoff.reset()
        if failed:
            now = self._clock.monotonic()
            while self._failures and now - self._failures[0] > spec.restart_window:
                self._failures.popleft()
            if len(self._failures) >= spec.max_restarts:
                plural = "" if spec.max_restarts == 1 else "s"
                return Next(
                    given_up=f"{spec.max_restarts} restart{plural} in {spec.restart_window:g}s"
                )
            self._failures.append(now)
        delay = self._backoff.next_delay()
        return Next(delay=delay, attempt=self._backoff.attempt)

    def reset(self) -> None:
        """A fresh start (by hand, or a fix saved): first delay, and the whole budget."""
        self._backoff.reset()
        self._failures.clear()

    def respec(self, spec: ServiceSpec, *, fresh: bool) -> None:
        """Take a new spec; `fresh` (a new way to run) also starts the budget over.

        The backoff keeps its place unless its steps changed.
        """
        old, self.spec = self.spec, spec
        if fresh or _steps(spec) != _steps(old):
            self._backoff = self._new_backoff(spec)
        if fresh:
            self._failures.clear()

    def _new_backoff(self, spec: ServiceSpec) -> Backoff:
        return Backoff(spec.backoff, spec.backoff_delay, spec.backoff_max, spec.jitter, self._rng)


def _steps(spec: ServiceSpec) -> tuple[object, ...]:
    """What a backoff is made of."""
    return (spec.backoff, spec.backoff_delay, spec.backoff_max, spec.jitter)
