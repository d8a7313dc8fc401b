"""Provides the Supervisor's inbox vocabulary: commands, what happened, and its incarnation.

A command (`Start`, `Stop`, ...) is answered through its `done` event once the supervisor
has handled it; the other messages say what happened to the service (a run ended, a backoff
delay elapsed, ...). `Incarnation` gathers what lasts as long as one run, or the wait for it.

They are plain slotted classes, not dataclasses: a dataclass compiles its methods from
source as its module is imported, and every start of tuisup imports this one (6.6 ms).
`__match_args__` lets the supervisor's one `match` take them apart.
"""

from __future__ import annotations

from pathlib import Path

import anyio

from tuisup.engine.executors import Executor, Run
from tuisup.engine.status import ExitStatus
from tuisup.spec import ServiceSpec


class Command:
    """Something asked of the supervisor; `done` is set once it has been handled."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = anyio.Event()


class Start(Command):
    """Start the service (a no-op while it is alive); resets its backoff and budget."""

    __slots__ = ()


class Stop(Command):
    """Stop the service, cancel its pending restart, or end a start under way."""

    __slots__ = ()


class Restart(Command):
    """Stop it if it runs, then start it again; not counted as a failure."""

    __slots__ = ()


class Respec(Command):
    """Take a spec that changes how it runs: a live service is started again under it."""

    __slots__ = ("spec", "executor")
    __match_args__ = ("spec", "executor")

    def __init__(self, spec: ServiceSpec, executor: Executor) -> None:
        super().__init__()
        self.spec = spec
        self.executor = executor


class Adopt(Command):
    """Take a spec changed only in how tuisup steers it (see `RUN_FIELDS`), in place."""

    __slots__ = ("spec",)
    __match_args__ = ("spec",)

    def __init__(self, spec: ServiceSpec) -> None:
        super().__init__()
        self.spec = spec


class DependenciesChanged:
    """What its dependencies do changed: a waiting service looks again."""

    __slots__ = ()


class FilesSaved:
    """Files it watches changed (which ones: `Incarnation.changed`, the last save wins)."""

    __slots__ = ()


class Exited:
    """A run ended: by itself, or because it was stopped."""

    __slots__ = ("run", "status")
    __match_args__ = ("run", "status")

    def __init__(self, run: Run, status: ExitStatus) -> None:
        self.run = run
        self.status = status


class Unhealthy:
    """A run turned unhealthy, and the service restarts when it does."""

    __slots__ = ("run", "reason")
    __match_args__ = ("run", "reason")

    def __init__(self, run: Run, reason: str | None) -> None:
        self.run = run
        self.reason = reason


class Retry:
    """A backoff delay elapsed; `timer` tells which one (a later stop may have ended it)."""

    __slots__ = ("timer",)
    __match_args__ = ("timer",)

    def __init__(self, timer: anyio.CancelScope) -> None:
        self.timer = timer


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


class Incarnation:
    """The run a service has, or the one it is about to make, and what goes with it."""

    __slots__ = (
        "run",
        "runs",
        "started_mono",
        "started_wall",
        "starting",
        "timer",
        "next_start",
        "waiting_for",
        "waiting_restart",
        "changed",
    )

    def __init__(self) -> None:
        self.run: Run | None = None
        """The current (or last) run."""
        self.runs = 0
        """Runs made so far (numbers the markers between runs in the log)."""
        self.started_mono = 0.0
        """When the current run started running, on the monotonic clock."""
        self.started_wall: float | None = None
        """When the current run started running, Unix time."""
        self.starting: anyio.CancelScope | None = None
        """While a run is starting: what a stop cancels to end the pending start at once."""
        self.timer: anyio.CancelScope | None = None
        """While in backoff: the delay before the next attempt."""
        self.next_start: float | None = None
        """While in backoff: the Unix time of the next attempt."""
        self.waiting_for: tuple[str, ...] = ()
        """While waiting: the dependencies that do not hold yet."""
        self.waiting_restart = False
        """While waiting: whether the start it waits to make is a restart."""
        self.changed: list[Path] | None = None
        """Files changed, for a restart already queued (None: none is)."""
