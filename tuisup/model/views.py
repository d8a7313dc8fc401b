"""Provides what observers see: `ServiceView`, `SpecView` of its table, `TableView` of replicas.

Plain data, with a JSON codec, so that a view travels over the control socket as it is and
a client needs nothing of the engine to read it. Secrets never leave the engine: the values
of environment variables whose names look secret are masked when a view is made.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tuisup.model.record import Record
from tuisup.model.states import ExitRecord, Health, ServiceState

SECRET = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|PASS|KEY|AUTH|CREDENTIAL|PRIVATE", re.I)
"""Names of variables whose values are never shown or sent."""
MASK = "••••••••"


def masked(name: str, value: str) -> str:
    """Hide the value of a secret-looking variable."""
    return MASK if value and SECRET.search(name) else value


def mask_env(env: Mapping[str, str]) -> dict[str, str]:
    """Return `env` with the values of secret-looking variables hidden."""
    return {name: masked(name, value) for name, value in env.items()}


IN_PROCESS = ("thread", "async")
"""The executors that run a service inside tuisup's own process (`ExecutorKind.in_process`)."""


class HealthCheckView(Record):
    """A service's health check, as written."""

    kind: str
    """`command`, `tcp` or `http`."""
    target: str
    """The command, `host:port` or URL."""
    interval: float
    timeout: float
    retries: int
    start_period: float


class ListenView(Record):
    """A listener's `listen` settings: what its stdin receives, and how much is kept for it."""

    kinds: tuple[str, ...] | None = None
    """The `event` words it gets; None: every kind."""
    services: tuple[str, ...] | None = None
    """The services whose events it gets; None: every service."""
    buffer: int = 1000
    """`listen_buffer`: events kept while it does not read."""

    def to_json(self) -> dict[str, Any]:
        """Return the view as JSON-ready data (None left out)."""
        data = {name: _plain(getattr(self, name)) for name in ListenView._fields}
        return {key: value for key, value in data.items() if value is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ListenView:
        """Read back what `to_json` wrote."""
        values = {k: v for k, v in data.items() if k in ListenView._fields}
        for name in ("kinds", "services"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        return cls(**values)


class GroupView(Record):
    """A service's group, as its `[groups.NAME]` table says."""

    name: str
    services: tuple[str, ...]
    """Its members, in start order."""
    strategy: str = "one_for_one"
    max_restarts: int = 3
    restart_window: float = 5.0
    on_failure: str = "stop"

    def budget(self) -> str:
        """`3 restarts in 5s, then stop`."""
        return f"{self.max_restarts} restarts in {self.restart_window:g}s, then {self.on_failure}"

    def to_json(self) -> dict[str, Any]:
        """Return the view as JSON-ready data."""
        return {name: _plain(getattr(self, name)) for name in GroupView._fields}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GroupView:
        """Read back what `to_json` wrote."""
        values = {k: v for k, v in data.items() if k in GroupView._fields}
        values["services"] = tuple(values.get("services", ()))
        return cls(**values)


class SpecView(Record):
    """A service's table in the manifest, as observers see it (environment values masked)."""

    name: str
    command: str
    """The command (or the target) as written."""
    target: str | None = None
    executor: str | None = None
    """As written (`process`, `thread`, `async`, `async-process`); None: decided at start."""
    cwd: str = ""
    env: Mapping[str, str] = {}  # shared by every record: never mutated
    """The service's own variables (on top of tuisup's), secrets masked."""
    env_file: str | None = None
    shell: bool = False
    autostart: bool = True
    restart: str = "on-failure"
    backoff: str = "exponential"
    backoff_delay: float = 0.5
    backoff_max: float = 30.0
    jitter: float = 0.1
    max_restarts: int = 5
    restart_window: float = 60.0
    success_exit_codes: tuple[int, ...] = (0,)
    stop_signal: str = "SIGTERM"
    stop_timeout: float = 10.0
    start_timeout: float = 30.0
    watch: tuple[str, ...] = ()
    depends_on: Mapping[str, str] = {}  # shared by every record: never mutated
    """What it waits for in each dependency (`started`, `healthy`, `completed`), in order."""
    healthcheck: HealthCheckView | None = None
    restart_on_unhealthy: bool = False
    restart_dependents: bool = False
    hooks: Mapping[str, str] = {}  # shared by every record: never mutated
    """Its event hooks: each event (`exited`, `unhealthy`, ...) and its command as written."""
    hook_timeout: float = 10.0
    listen: ListenView | None = None
    """A listener's settings; None: not a listener (its stdin is /dev/null)."""
    port: int | None = None
    """Its own port (`port` plus its replica index); None: the table has no `port`."""
    group: GroupView | None = None
    """Its group's table; None: it is in no group."""

    @property
    def in_process(self) -> bool:
        """Whether it runs inside tuisup (a thread, or a task on its loop), as far as known."""
        return self.target is not None and self.executor in (*IN_PROCESS, None)

    def to_json(self) -> dict[str, Any]:
        """Return the view as JSON-ready data."""
        data = {name: _plain(getattr(self, name)) for name in _SPEC_FIELDS}
        if self.healthcheck is not None:
            data["healthcheck"] = {name: getattr(self.healthcheck, name) for name in _HEALTH_FIELDS}
        if self.listen is not None:
            data["listen"] = self.listen.to_json()
        if self.group is not None:
            data["group"] = self.group.to_json()
        return {key: value for key, value in data.items() if value is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SpecView:
        """Read back what `to_json` wrote (unknown keys are ignored: a newer host may add)."""
        values: dict[str, Any] = {k: v for k, v in data.items() if k in _SPEC_FIELDS}
        for name in ("success_exit_codes", "watch"):
            if name in values:
                values[name] = tuple(values[name])
        check = data.get("healthcheck")
        if check is not None:
            values["healthcheck"] = HealthCheckView(
                **{k: v for k, v in check.items() if k in _HEALTH_FIELDS}
            )
        listen = data.get("listen")
        if listen is not None:
            values["listen"] = ListenView.from_json(listen)
        group = data.get("group")
        if group is not None:
            values["group"] = GroupView.from_json(group)
        return cls(**values)


class TableView(Record):
    """A replicated table (a service with `replicas`): its count now, and its group.

    One scaled to zero has no service, so no `ServiceView`; a front end learns of it here.
    """

    replicas: int
    group: str | None = None
    """The group it is a member of (`[groups.NAME]`), if any."""

    def to_json(self) -> dict[str, Any]:
        """Return the table as JSON-ready data."""
        return {"replicas": self.replicas, "group": self.group}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TableView:
        """Read back what `to_json` wrote."""
        group = data.get("group")
        return cls(replicas=int(data["replicas"]), group=None if group is None else str(group))


class ServiceView(Record):
    """A snapshot of one service, for observers: its state, run, restarts, health, history."""

    name: str
    state: ServiceState
    spec: SpecView
    pid: int | None = None
    executor: str | None = None
    """How the current (or last) run runs: `process`, `thread`, `async`, `async-process`."""
    restarts: int = 0
    started: float | None = None
    """Unix time the current run started, while it runs."""
    next_start: float | None = None
    """Unix time of the next attempt, while in backoff."""
    reason: str | None = None
    """Why it is in this state: what it waits for, why it failed, ..."""
    health: Health | None = None
    """While it runs with a health check: its health; otherwise None."""
    health_reason: str | None = None
    """While it is unhealthy: the last check's failure."""
    waiting_for: tuple[str, ...] = ()
    """While it is waiting: the dependencies that do not hold yet."""
    history: tuple[ExitRecord, ...] = ()
    """Its last exits, oldest first."""
    log_problem: str | None = None
    """While its log file cannot be written: why (its lines are kept in memory only)."""
    watching: bool | None = None
    """Whether saving its files restarts it (False: paused; None: it watches nothing)."""
    replica: int | None = None
    """Its index when it is a replica: `worker.2` is replica 2 of the table `worker`."""
    group: str | None = None
    """The group it belongs to (`[groups.NAME]`), if any."""
    group_failed: str | None = None
    """While its group has given up: why (e.g. `group pipeline: 4 restarts in 5s`)."""

    @property
    def declared(self) -> str:
        """The name of the table it comes from (`worker` for `worker.2`)."""
        return self.name.split(".", 1)[0]

    @property
    def last_exit(self) -> ExitRecord | None:
        """The most recent exit, if any."""
        return self.history[-1] if self.history else None

    def to_json(self, *, spec: bool = True) -> dict[str, Any]:
        """Return the view as JSON-ready data, with the same words as the events.

        Args:
            spec: Include the manifest table (`spec`); without it, the state alone.
        """
        data: dict[str, Any] = {"service": self.name, "state": self.state.value}
        # Field by field, not through a generic loop: a snapshot of 100 services (`tuisup
        # ps`) is made of this, and the loop's type tests were most of its time.
        for name in _PLAIN_FIELDS:
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.health is not None:
            data["health"] = self.health.value
        if self.waiting_for:
            data["waiting_for"] = list(self.waiting_for)
        data["restarts"] = self.restarts
        if self.history:
            data["history"] = [record.to_json() for record in self.history]
        if spec:
            data["spec"] = self.spec.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any], spec: SpecView | None = None) -> ServiceView:
        """Read back what `to_json` wrote.

        Args:
            data: The view's JSON.
            spec: Its `spec` already read (a client that read the same one before).
        """
        health = data.get("health")
        name = data["service"]
        if spec is None:
            raw = data.get("spec")  # left out (`spec: false`): a bare one, its name alone
            spec = SpecView.from_json(raw) if raw else SpecView(name=name, command="")
        return cls(
            name=name,
            state=ServiceState(data["state"]),
            spec=spec,
            pid=data.get("pid"),
            executor=data.get("executor"),
            restarts=int(data.get("restarts", 0)),
            started=data.get("started"),
            next_start=data.get("next_start"),
            reason=data.get("reason"),
            health=Health(health) if health is not None else None,
            health_reason=data.get("health_reason"),
            waiting_for=tuple(data.get("waiting_for", ())),
            history=tuple(ExitRecord.from_json(r) for r in data.get("history", ())),
            log_problem=data.get("log_problem"),
            watching=data.get("watching"),
            replica=data.get("replica"),
            group=data.get("group"),
            group_failed=data.get("group_failed"),
        )


_SPEC_FIELDS = tuple(f for f in SpecView._fields if f not in ("healthcheck", "listen", "group"))
_HEALTH_FIELDS = HealthCheckView._fields
_PLAIN_FIELDS = (
    "pid",
    "executor",
    "started",
    "next_start",
    "reason",
    "health_reason",
    "log_problem",
    "watching",
    "replica",
    "group",
    "group_failed",
)
"""A view's fields that are JSON as they are (numbers, strings, booleans, or None)."""


def _plain(value: Any) -> Any:
    """A value as JSON has it: enums by their value, tuples as lists."""
    if isinstance(value, ServiceState | Health):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value
