"""Provides the words of a service's life: its states, its health, and how its runs ended."""

from __future__ import annotations

import enum
import signal
from typing import Any

from tuisup.model.record import Record


class ServiceState(enum.StrEnum):
    """Where a service is in its life (see the supervisor's transition table)."""

    STOPPED = "stopped"
    WAITING = "waiting"
    """Asked to start, but its dependencies do not hold yet; the reason says which."""
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    EXITED = "exited"
    FAILED = "failed"


ACTIVE = frozenset(
    {
        ServiceState.WAITING,
        ServiceState.STARTING,
        ServiceState.RUNNING,
        ServiceState.BACKOFF,
        ServiceState.STOPPING,
    }
)
"""States in which a service is alive or will be again without being asked."""


class Health(enum.StrEnum):
    """A running service's health, by its health check; every run starts `unknown`."""

    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


class ExitStatus(Record):
    """How one run ended: an exit code, a signal, or an error that stopped it starting."""

    code: int | None = None
    signal: int | None = None
    error: str | None = None
    """Why it could not start, or the exception that ended it (`ValueError: boom`)."""
    stuck: bool = False
    """The run did not end when forced (a thread that ignores its token); it is abandoned."""

    def succeeded(self, success_codes: frozenset[int] | tuple[int, ...]) -> bool:
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


class ExitRecord(Record):
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

    def to_json(self) -> dict[str, Any]:
        """Return the record as JSON-ready data: the exit's fields, `started`, `requested`."""
        data = {key: value for key, value in self.event_fields().items() if value is not None}
        data["started"] = round(self.started, 6)
        if self.requested:
            data["requested"] = True
        if self.status.stuck:
            data["stuck"] = True
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExitRecord:
        """Read back what `to_json` wrote."""
        status = ExitStatus(
            code=data.get("exit_code"),
            signal=data.get("signal"),
            error=data.get("error"),
            stuck=bool(data.get("stuck", False)),
        )
        return cls(
            started=float(data.get("started", 0.0)),
            runtime=float(data.get("runtime", 0.0)),
            status=status,
            requested=bool(data.get("requested", False)),
        )
