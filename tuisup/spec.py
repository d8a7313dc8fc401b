"""Provides the typed, frozen specs that a services.toml manifest turns into."""

from __future__ import annotations

import enum
import signal
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import ClassVar

from tuisup.model.record import EMPTY, Record


class RestartPolicy(enum.StrEnum):
    """Whether a service that ended by itself is started again (compose's words)."""

    ALWAYS = "always"
    """After every end of a run, a clean one too."""
    ON_FAILURE = "on-failure"
    """After a run that ended with a signal, or an exit code not in `success_exit_codes`."""
    NEVER = "never"
    """Never: a run that ended leaves the service `exited`."""

    def restarts(self, succeeded: bool) -> bool:
        """Whether a run that ended by itself, with success or not, is followed by another."""
        return self is RestartPolicy.ALWAYS or (self is RestartPolicy.ON_FAILURE and not succeeded)


class BackoffKind(enum.StrEnum):
    """When the next attempt comes after a failure."""

    IMMEDIATE = "immediate"
    """At once."""
    FIXED = "fixed"
    """After `backoff_delay` every time."""
    LINEAR = "linear"
    """After `backoff_delay` times the attempt's number."""
    EXPONENTIAL = "exponential"
    """After `backoff_delay`, doubled at each attempt."""

    def delay(self, attempt: int, first: float, cap: float) -> float:
        """Return the delay before restart `attempt` (1 for the first), before jitter.

        Args:
            attempt: How many restarts this one makes in the current backoff run, from 1.
            first: The first delay, and the step of `linear`.
            cap: No delay is longer than this.
        """
        if attempt < 1:
            raise ValueError(f"attempt counts from 1, got {attempt}")
        match self:
            case BackoffKind.IMMEDIATE:
                return 0.0
            case BackoffKind.FIXED:
                seconds = first
            case BackoffKind.LINEAR:
                seconds = first * attempt
            case BackoffKind.EXPONENTIAL:
                # Past 2**64 the cap has long won; stop the float from overflowing.
                seconds = first * 2.0 ** min(attempt - 1, 64)
        return min(seconds, cap)


class ExecutorKind(enum.StrEnum):
    """How a service runs (see README.md, "Python services")."""

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
    """Passes when the command exits 0."""
    TCP = "tcp"
    """Passes when a TCP connection opens."""
    HTTP = "http"
    """Passes when a GET gets the status it expects (any 2xx by default)."""


class HealthCheck(Record):
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


class HookEvent(enum.StrEnum):
    """What a service's hook runs on: the keys of its `on` table."""

    STARTED = "started"
    """A run is up (`running`)."""
    EXITED = "exited"
    """A run ended by itself (whether it is restarted or not)."""
    FAILED = "failed"
    """It is `failed`: restart budget spent, cannot start, a dependency failed for good."""
    RESTARTING = "restarting"
    """A restart is scheduled (backoff)."""
    HEALTHY = "healthy"
    """Its health check passed (after not passing)."""
    UNHEALTHY = "unhealthy"
    """Its health check failed `retries` times in a row."""
    STOPPED = "stopped"
    """It is `stopped`: by hand, by a shutdown, or a pending restart cancelled."""
    FILES_CHANGED = "files_changed"
    """Files it watches changed."""


class LogFormat(enum.StrEnum):
    """How a service's lines are written to its log file."""

    TEXT = "text"
    """Line by line, each after its time when `log_timestamps` is on."""
    JSON = "json"
    """One JSON object a line: `{"ts", "stream", "line"}`."""
    RAW = "raw"
    """The bytes exactly as the service wrote them."""


MIB = 1 << 20


class LogOptions(Record):
    """How a service's log file is written and rotated (`log_*` keys, `[tuisup]` defaults)."""

    max_bytes: int = 10 * MIB
    """Size at which `NAME.log` is rotated (at a line end); 0 never rotates."""
    backups: int = 5
    """Rotated files kept (`NAME.log.1` the newest); 0 cuts the file and keeps none."""
    timestamps: bool = True
    """Whether each line in the file starts with the RFC 3339 time it was read."""
    format: LogFormat = LogFormat.TEXT
    """How lines are written (see `LogFormat`)."""


class Hook(Record):
    """One command of a service's `on` table."""

    argv: tuple[str, ...]
    """The program and its arguments (`/bin/sh -c` for a string)."""
    command: str
    """As written, for display."""


def selects(services: Collection[str] | None, name: str) -> bool:
    """Whether a selection of services (None: every one) takes the service `name`.

    A replicated service's name stands for each of its replicas (`worker.0`, ...), as it
    does for the verbs that act on services.
    """
    if services is None or name in services:
        return True
    return "." in name and name.split(".", 1)[0] in services


class Listen(Record):
    """A listener service's `listen` table: the events its stdin receives, as JSON lines."""

    kinds: tuple[str, ...] | None = None
    """The `event` words it gets (`state`, `health`, ...); None: every kind."""
    services: tuple[str, ...] | None = None
    """The services whose events it gets (and whose state its snapshots hold); None: all.
    Events about no service (`host_stopping`, ...) pass whatever this says."""

    def wants(self, kind: str, service: str | None) -> bool:
        """Whether an event of `kind` about `service` (None: about the host) goes to it.

        A replicated service's name stands for each of its replicas (`worker.0`, ...).
        """
        if self.kinds is not None and kind not in self.kinds:
            return False
        return service is None or selects(self.services, service)


class ServiceSpec(Record):
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
    env: Mapping[str, str] = EMPTY
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
    depends_on: Mapping[str, Condition] = EMPTY
    """Services this one needs, and what it waits for in each, in the order written."""
    healthcheck: HealthCheck | None = None
    """How to tell that the running service works; None: its health stays unknown."""
    restart_on_unhealthy: bool = False
    """Whether an unhealthy run is restarted, as a failure (policy, backoff, budget)."""
    restart_dependents: bool = False
    """Whether this service starting again restarts its running dependents."""
    hooks: Mapping[HookEvent, Hook] = EMPTY
    """Commands run when something happens to the service (its `on` table), in file order."""
    hook_timeout: float = 10.0
    """Seconds one run of a hook may take before it is killed with its group."""
    target: str | None = None
    """A Python service's `module:attribute`; None for a command."""
    executor: ExecutorKind | None = ExecutorKind.PROCESS
    """How the service runs; None for a target whose kind decides (async or thread)."""
    line: int = 0
    """The manifest line of the service's table, for messages."""
    # -- listener services (engine.listeners) --
    listen: Listen | None = None
    """The events its stdin receives, one JSON line each; None: its stdin is /dev/null."""
    listen_buffer: int = 1000
    """Events kept for it while it does not read; past that the oldest are dropped."""
    logs: LogOptions = LogOptions()
    """How its log file is written: its `log_*` keys over those of `[tuisup]`."""
    # -- replicas and groups (manifest.replicas, manifest.groups) --
    replica: int | None = None
    """Its index (from 0) when its table has `replicas`: it is then named `NAME.INDEX`."""
    port: int | None = None
    """Its own port: the table's `port` plus its replica index; None without `port`."""
    group: GroupSpec | None = None
    """The group it belongs to (`[groups.NAME]`), if any."""

    @property
    def group_name(self) -> str | None:
        """Its group's name, if it has one."""
        return self.group.name if self.group is not None else None

    @property
    def in_process(self) -> bool:
        """Whether it runs inside tuisup's own process: a target with no process executor.

        It shares tuisup's environment: it gets none of the variables a process gets.
        """
        return self.target is not None and (self.executor is None or self.executor.in_process)

    @property
    def declared(self) -> str:
        """The name of the table it comes from: `worker` for the replica `worker.2`.

        A declared name never holds a `.`, so the instance's name says it.
        """
        return self.name.split(".", 1)[0]


RUN_FIELDS = (
    *("argv", "command", "cwd", "env", "shell", "env_file", "target", "executor"),
    *("listen", "listen_buffer"),  # they shape the run's stdin
)
"""The fields of a ServiceSpec that shape the running service itself: a change to one of
them needs a new run. The others only steer tuisup (restarts, stops, watching, health,
dependencies, hooks) and apply to the run in place."""


class GroupStrategy(enum.StrEnum):
    """Which members of a group restart when one of them fails (Erlang/OTP's words)."""

    ONE_FOR_ONE = "one_for_one"
    """Only the one that failed (as every service outside a group)."""
    ONE_FOR_ALL = "one_for_all"
    """All of them: the others are stopped, in reverse order, then all start in order."""
    REST_FOR_ONE = "rest_for_one"
    """The one that failed and those after it in `services`."""


class GroupFailure(enum.StrEnum):
    """What a group that spent its restart budget does."""

    STOP = "stop"
    """Its members are stopped and the group is `failed`."""
    SHUTDOWN = "shutdown"
    """tuisup stops everything and exits with 1 (for a CI script)."""


class GroupSpec(Record):
    """One `[groups.NAME]` table: services that restart together."""

    name: str
    services: tuple[str, ...]
    """Its members' declared names, in start order (stops run in reverse)."""
    strategy: GroupStrategy = GroupStrategy.ONE_FOR_ONE
    max_restarts: int = 3
    """More group restarts than this within `restart_window` and the group fails."""
    restart_window: float = 5.0
    """Seconds over which the group's restarts are counted."""
    on_failure: GroupFailure = GroupFailure.STOP
    line: int = 0
    """The manifest line of the group's table, for messages (a table that only moved is
    the same group: its members are not changed by it)."""

    _uncompared: ClassVar[tuple[str, ...]] = ("line",)


class Template(Record):
    """A declared table with `replicas` or `port`, kept to make its instances again.

    Scaling (`tuisup scale`, the console's `+`/`-`) makes more or fewer instances of the
    same table without reading the manifest again.
    """

    name: str
    replicas: int | None
    """How many instances run; None: the table has no `replicas` (one, named as declared)."""
    port: int | None
    """The first instance's port; instance `i` gets `port + i`."""
    table: Mapping[str, object]
    """The table as read from the TOML (checked: its instances were made from it)."""
    line: int = 0
    """Where the table is in the file: instances made again take its place in the order."""


class ExportSettings(Record):
    """The optional `[tuisup.export]` table: what `tuisup export` needs that services don't say."""

    image: str | None = None
    """The container image of compose and Kubernetes services; None: `tuisup.export`'s default."""


class HostSettings(Record):
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
    logs: LogOptions = LogOptions()
    """The `log_*` keys of `[tuisup]`: every service's defaults."""
    metrics: tuple[str, int] | None = None
    """Where Prometheus metrics are served (`/metrics`): host and port; None: nowhere."""
    export: ExportSettings = ExportSettings()
    """What `tuisup export` needs: not used to run the services."""


class Manifest(Record):
    """A validated manifest: where it came from, host settings and services in file order."""

    path: Path
    settings: HostSettings
    services: Mapping[str, ServiceSpec]
    """Every instance: a replicated table's replicas (`worker.0`, ...), the others as named."""
    templates: Mapping[str, Template] = EMPTY
    """The tables with `replicas` or `port`, by declared name."""
    groups: Mapping[str, GroupSpec] = EMPTY
    """`[groups.NAME]` tables in file order."""

    def instances(self, name: str) -> list[str]:
        """The services a declared name (or a service's own name) stands for, in order."""
        template = self.templates.get(name)
        if template is None or template.replicas is None:
            return [name] if name in self.services else []
        return [f"{name}.{i}" for i in range(template.replicas)]

    @property
    def replicated(self) -> dict[str, int]:
        """Each table with `replicas` (one with only `port` is not scaled) and its count."""
        return {name: t.replicas for name, t in self.templates.items() if t.replicas is not None}

    def members(self, group: GroupSpec) -> list[str]:
        """A group's services, in start order (each replica of a replicated member)."""
        return [i for member in group.services for i in self.instances(member)]

    @property
    def root(self) -> Path:
        """The folder the manifest lives in; relative paths start here."""
        return self.path.parent
