"""Provides the restart delay strategies: immediate, fixed, linear and exponential, with jitter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuisup.spec import BackoffKind

if TYPE_CHECKING:
    import random

_shared: random.Random | None = None
"""The jitter's generator, shared by every service (each seeding one was 0.9 ms a hundred)."""


def _shared_rng() -> random.Random:
    """The shared generator, made (and `random` imported) at the first jittered delay."""
    global _shared
    if _shared is None:
        import random

        _shared = random.Random()
    return _shared


class Backoff:
    """The delays of one service's successive restarts, with bounded jitter.

    A delay `d` becomes a value drawn uniformly from `[d * (1 - jitter), d * (1 + jitter)]`.
    """

    def __init__(
        self,
        kind: BackoffKind,
        delay: float,
        cap: float,
        jitter: float,
        rng: random.Random | None = None,
    ) -> None:
        self.kind = kind
        self.delay = delay
        self.cap = cap
        self.jitter = jitter
        self.attempt = 0
        """Restarts made since the last reset."""
        self._rng = rng

    def next_delay(self) -> float:
        """Count one more attempt and return the seconds to wait before it."""
        self.attempt += 1
        seconds = BackoffKind(self.kind).delay(self.attempt, self.delay, self.cap)
        if self.jitter and seconds:
            rng = self._rng or _shared_rng()
            seconds *= 1.0 + rng.uniform(-self.jitter, self.jitter)
        return seconds

    def reset(self) -> None:
        """Start again from the first delay (after a long enough run, or a manual start)."""
        self.attempt = 0
