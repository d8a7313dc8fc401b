"""Provides the vocabulary of a service's life: the state machine's edges and the snapshots.

`TRANSITIONS` is the whole state machine; `ServiceStatus` is what observers get of a
service (the console, the printer, a dependent's gate), `ExitRecord` one ended run.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any

from tuisup.engine.events import Health, ServiceState
from tuisup.spec import ServiceSpec

S = ServiceState
TRANSITIONS: dict[ServiceState, frozenset[ServiceState]] = {
    S.STOPPED: frozenset({S.WAITING, S.STARTING, S.FAILED}),
    S.WAITING: frozenset({S.WAITING, S.STARTING, S.STOPPED, S.FAILED}),
    S.STARTING: frozenset({S.RUNNING, S.STOPPING, S.FAILED}),
    S.RUNNING: frozenset({S.STOPPING, S.BACKOFF, S.EXITED, S.FAILED}),
    S.BACKOFF: frozenset({S.WAITING, S.STARTING, S.STOPPED, S.FAILED}),
    S.STOPPING: frozenset({S.STOPPED, S.BACKOFF, S.FAILED}),
    S.EXITED: frozenset({S.WAITING, S.STARTING, S.FAILED}),
    S.FAILED: frozenset({S.WAITING, S.STARTING, S.FAILED}),
}
"""Every allowed edge of the state machine; anything else is a bug and raises.

`waiting → waiting` says what it waits for changed; `starting → stopping` is a stop asked
for while a run was still starting; `stopping → backoff` is an unhealthy run restarted;
`→ failed` from a non-running state is a dependency that failed for good.
"""

ACTIVE = frozenset({S.WAITING, S.STARTING, S.RUNNING, S.BACKOFF, S.STOPPING})
"""States in which a service is alive or will be again without being asked."""

LIVE = frozenset({S.STARTING, S.RUNNING, S.STOPPING})
"""States in which the service has a run."""


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How one run ended: an exit code, a signal, or an error that stopped it starting."""

    code: int | None = None
    signal: int | None = None
    error: str | None = None
    """Why it could not start, or the exception that ended it (`ValueError: boom`)."""
    stuck: bool = False
    """The run did not end when forced (a thread that ignores its token); it is abandoned."""

    def succeeded(self, success_codes: frozenset[int]) -> bool:
        """Return whether this exit counts as success."""
        return self.error is None and self.signal is None and self.code in success_codes

    def describe(self) -> str:
        """Return e.g. `code 1`, `signal 9 (SIGKILL)` or the error."""
        if self.error is not None:
            return self.error
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                return f"signal {self.signal}"
            return f"signal {self.signal} ({name})"
        return f"code {self.code}"


class TransitionError(RuntimeError):
    """A state change that the transition table does not allow."""


@dataclass(frozen=True, slots=True)
class ExitRecord:
    """One ended run: when it started (Unix time), how long it ran, and how it ended."""

    started: float
    runtime: float
    status: ExitStatus
    requested: bool
    """True when the run ended because it was asked to stop."""

    def event_fields(self) -> dict[str, Any]:
        """The `StateChanged` fields that describe this exit."""
        status = self.status
        return {
            "exit_code": status.code,
            "signal": status.signal,
            "runtime": round(self.runtime, 3),
            "error": status.error,
        }

    def marker(self, run: int) -> str:
        """Return the line that separates this run from run number `run` in the log."""
        how = "stopped" if self.requested else f"exited with {self.status.describe()}"
        return f"── run {run} · {how} after {self.runtime:.1f}s ──"


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """A snapshot of one service for observers."""

    name: str
    state: ServiceState
    pid: int | None
    executor: str | None
    """How the current (or last) run runs: `process`, `thread`, `async`, `async-process`."""
    restarts: int
    started: float | None
    """Unix time the current run started, while it runs."""
    next_start: float | None
    """Unix time of the next attempt, while in backoff."""
    reason: str | None
    """Why it is in this state: what it waits for, why it failed, ..."""
    health: Health | None
    """While it runs with a health check: its health; otherwise None."""
    health_reason: str | None
    """While it is unhealthy: the last check's failure."""
    waiting_for: tuple[str, ...]
    """While it is waiting: the dependencies that do not hold yet."""
    history: tuple[ExitRecord, ...]
    spec: ServiceSpec
    log_problem: str | None = None
    """While its log file cannot be written: why (its lines are kept in memory only)."""

    @property
    def last_exit(self) -> ExitRecord | None:
        """The most recent exit, if any."""
        return self.history[-1] if self.history else None

    def to_json(self) -> dict[str, Any]:
        """Return the status as JSON-ready data, with the same words as the events."""
        data: dict[str, Any] = {
            "service": self.name,
            "state": self.state.value,
            "restarts": self.restarts,
        }
        optional: dict[str, Any] = {
            "pid": self.pid,
            "executor": self.executor,
            "started": self.started,
            "next_start": self.next_start,
            "reason": self.reason,
            "health": self.health.value if self.health is not None else None,
            "health_reason": self.health_reason,
            "waiting_for": list(self.waiting_for) or None,
        }
        data.update((key, value) for key, value in optional.items() if value is not None)
        last = self.last_exit
        if last is not None:
            data["last_exit"] = {
                key: value for key, value in last.event_fields().items() if value is not None
            }
        return data
