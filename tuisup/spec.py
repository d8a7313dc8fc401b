"""Provides the typed, frozen specs that a services.toml manifest turns into."""

from __future__ import annotations

import enum
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class RestartPolicy(enum.StrEnum):
    """Whether a service that ended by itself is started again (compose's words)."""

    ALWAYS = "always"
    ON_FAILURE = "on-failure"
    NEVER = "never"


class BackoffKind(enum.StrEnum):
    """When the next attempt comes after a failure."""

    IMMEDIATE = "immediate"
    FIXED = "fixed"
    LINEAR = "linear"
    EXPONENTIAL = "exponential"


class ExecutorKind(enum.StrEnum):
    """How a service runs (see DESIGN.md, "The four executors")."""

    PROCESS = "process"
    THREAD = "thread"
    ASYNC = "async"
    ASYNC_PROCESS = "async-process"

    @property
    def in_process(self) -> bool:
        """Whether the service runs inside tuisup's own process."""
        return self in (ExecutorKind.THREAD, ExecutorKind.ASYNC)


class Condition(enum.StrEnum):
    """What a dependent waits for in a dependency (`depends_on`, compose's words)."""

    STARTED = "started"
    """It runs (or ran and ended cleanly)."""
    HEALTHY = "healthy"
    """It runs and its health check passed."""
    COMPLETED = "completed"
    """It ran to the end with a success exit code: a one-shot job such as a migration."""


class HealthKind(enum.StrEnum):
    """How a health check probes its service."""

    COMMAND = "command"
    TCP = "tcp"
    HTTP = "http"


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """A service's `healthcheck` table."""

    kind: HealthKind
    target: str
    """The command, `host:port` or URL, as written (for display)."""
    argv: tuple[str, ...] = ()
    """The command's program and arguments (`/bin/sh -c` for a string)."""
    host: str = "127.0.0.1"
    port: int = 0
    path: str = "/"
    """The HTTP request target: path and query."""
    tls: bool = False
    """Whether the URL is `https`."""
    status: int | None = None
    """The HTTP status that passes; None: any 2xx."""
    interval: float = 5.0
    """Seconds between checks (more often until the first pass: see `engine.health`)."""
    timeout: float = 2.0
    """Seconds one check may take before it counts as failed (and is killed)."""
    retries: int = 3
    """Consecutive failures that make a service unhealthy."""
    start_period: float = 0.0
    """Seconds after each start in which failures do not count."""


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One `[services.NAME]` table, validated and with every default filled in."""

    name: str
    """The service's name: letters, digits, `-` and `_`, starting with a letter."""
    argv: tuple[str, ...]
    """The program and its arguments; `("/bin/sh", "-c", command)` when `shell = true`;
    empty for a Python `target`."""
    command: str
    """The command (or the target) as the user wrote it, for display."""
    cwd: Path
    """Absolute working directory (relative paths are taken from the manifest's folder)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Variables added to tuisup's own environment: `env_file` first, then `env`."""
    shell: bool = False
    """Whether `command` runs through `/bin/sh -c`."""
    env_file: Path | None = None
    """The dotenv file the variables were read from, if any."""
    autostart: bool = True
    """Whether the service starts with the host."""
    restart: RestartPolicy = RestartPolicy.ON_FAILURE
    """Whether a run that ended by itself is followed by another."""
    backoff: BackoffKind = BackoffKind.EXPONENTIAL
    """The delay strategy between a failure and the next attempt."""
    backoff_delay: float = 0.5
    """Seconds: the first delay (and the step for `linear`)."""
    backoff_max: float = 30.0
    """Seconds: no delay is longer than this."""
    jitter: float = 0.1
    """Fraction of each delay added or taken away at random (0 to 1)."""
    max_restarts: int = 5
    """The restart budget: more failures than this within `restart_window` is `failed`."""
    restart_window: float = 60.0
    """Seconds over which failures are counted against `max_restarts`."""
    success_exit_codes: frozenset[int] = frozenset({0})
    """Exit codes that count as success (for `on-failure` and the final exit status)."""
    stop_signal: signal.Signals = signal.SIGTERM
    """The first signal a stop sends to the service's process group."""
    stop_timeout: float = 10.0
    """Seconds between `stop_signal` and SIGKILL."""
    start_timeout: float = 30.0
    """Seconds a start may take (a Python target's import in its child) before the run is
    killed and the service is `failed`."""
    watch: tuple[str, ...] = ()
    """Files, folders and globs (relative to `cwd`) whose changes restart the service."""
    watch_ignore: tuple[str, ...] = ()
    """Paths and globs among those that never restart it."""
    watch_debounce: int = 200
    """Milliseconds of quiet after the last change before the restart (trailing edge)."""
    depends_on: Mapping[str, Condition] = field(default_factory=dict)
    """Services this one needs, and what it waits for in each, in the order written."""
    healthcheck: HealthCheck | None = None
    """How to tell that the running service works; None: its health stays unknown."""
    restart_on_unhealthy: bool = False
    """Whether an unhealthy run is restarted, as a failure (policy, backoff, budget)."""
    restart_dependents: bool = False
    """Whether this service starting again restarts its running dependents."""
    target: str | None = None
    """A Python service's `module:attribute`; None for a command."""
    executor: ExecutorKind | None = ExecutorKind.PROCESS
    """How the service runs; None for a target whose kind decides (async or thread)."""
    line: int = 0
    """The manifest line of the service's table, for messages."""


RUN_FIELDS = ("argv", "command", "cwd", "env", "shell", "env_file", "target", "executor")
"""The fields of a ServiceSpec that shape the running service itself: a change to one of
them needs a new run. The others only steer tuisup (restarts, stops, watching, health,
dependencies) and apply to the run in place."""


@dataclass(frozen=True, slots=True)
class HostSettings:
    """The optional `[tuisup]` table."""

    log_dir: Path | None
    """Folder of per-service log files (`NAME.log`); None writes none."""
    shutdown_timeout: float = 30.0
    """Seconds a host shutdown may take before every remaining process is killed."""
    log_lines: int = 10_000
    """Lines kept in memory per service (the merged view keeps the same number)."""
    reload: bool = True
    """Whether edits to the manifest are applied as soon as it is saved."""
    socket: Path | None = None
    """Where the control socket goes (absolute); None: `.tuisup/tuisup.sock` beside the
    manifest (see `tuisup.control.paths`)."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """A validated manifest: where it came from, host settings and services in file order."""

    path: Path
    settings: HostSettings
    services: Mapping[str, ServiceSpec]

    @property
    def root(self) -> Path:
        """The folder the manifest lives in; relative paths start here."""
        return self.path.parent
