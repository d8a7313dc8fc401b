"""Provides the Supervisor's inbox vocabulary: commands, what happened, and its incarnation.

A command (`Start`, `Stop`, ...) is answered through its `done` event once the supervisor
has handled it; the other messages say what happened to the service (a run ended, a backoff
delay elapsed, ...). `Incarnation` gathers what lasts as long as one run, or the wait for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import anyio

from tuisup.engine.executors import Executor, Run
from tuisup.engine.status import ExitStatus
from tuisup.spec import ServiceSpec


@dataclass(frozen=True, slots=True, eq=False)
class Command:
    """Something asked of the supervisor; `done` is set once it has been handled."""

    done: anyio.Event = field(default_factory=anyio.Event, kw_only=True)


@dataclass(frozen=True, slots=True, eq=False)
class Start(Command):
    """Start the service (a no-op while it is alive); resets its backoff and budget."""


@dataclass(frozen=True, slots=True, eq=False)
class Stop(Command):
    """Stop the service, cancel its pending restart, or end a start under way."""


@dataclass(frozen=True, slots=True, eq=False)
class Restart(Command):
    """Stop it if it runs, then start it again; not counted as a failure."""


@dataclass(frozen=True, slots=True, eq=False)
class Respec(Command):
    """Take a spec that changes how it runs: a live service is started again under it."""

    spec: ServiceSpec
    executor: Executor


@dataclass(frozen=True, slots=True, eq=False)
class Adopt(Command):
    """Take a spec changed only in how tuisup steers it (see `RUN_FIELDS`), in place."""

    spec: ServiceSpec


@dataclass(frozen=True, slots=True, eq=False)
class DependenciesChanged:
    """What its dependencies do changed: a waiting service looks again."""


@dataclass(frozen=True, slots=True, eq=False)
class FilesSaved:
    """Files it watches changed (which ones: `Incarnation.changed`, the last save wins)."""


@dataclass(frozen=True, slots=True, eq=False)
class Exited:
    """A run ended: by itself, or because it was stopped."""

    run: Run
    status: ExitStatus


@dataclass(frozen=True, slots=True, eq=False)
class Unhealthy:
    """A run turned unhealthy, and the service restarts when it does."""

    run: Run
    reason: str | None


@dataclass(frozen=True, slots=True, eq=False)
class Retry:
    """A backoff delay elapsed; `timer` tells which one (a later stop may have ended it)."""

    timer: anyio.CancelScope


CommandMessage = Start | Stop | Restart | Respec | Adopt
Message = (
    Start
    | Stop
    | Restart
    | Respec
    | Adopt
    | DependenciesChanged
    | FilesSaved
    | Exited
    | Unhealthy
    | Retry
)


@dataclass(slots=True)
class Incarnation:
    """The run a service has, or the one it is about to make, and what goes with it."""

    run: Run | None = None
    """The current (or last) run."""
    runs: int = 0
    """Runs made so far (numbers the markers between runs in the log)."""
    started_mono: float = 0.0
    """When the current run started running, on the monotonic clock."""
    started_wall: float | None = None
    """When the current run started running, Unix time."""
    starting: anyio.CancelScope | None = None
    """While a run is starting: what a stop cancels to end the pending start at once."""
    timer: anyio.CancelScope | None = None
    """While in backoff: the delay before the next attempt."""
    next_start: float | None = None
    """While in backoff: the Unix time of the next attempt."""
    waiting_for: tuple[str, ...] = ()
    """While waiting: the dependencies that do not hold yet."""
    waiting_restart: bool = False
    """While waiting: whether the start it waits to make is a restart."""
    changed: list[Path] | None = None
    """Files changed, for a restart already queued (None: none is)."""
