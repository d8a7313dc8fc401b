"""Provides the events: everything that happens to a host and its services, as plain data.

An event is a small frozen record (`tuisup.model.record`: cheaper to define than a
dataclass, and every start defines them all) stamped with a sequence number (`seq`, one
more per event) and a Unix time (`ts`). Its JSON form (`to_json`) is the one schema of `tuisup
--no-tui --json`, of `tuisup events --json` and of the control socket's streams;
`event_from_json` reads it back.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, ClassVar

from tuisup.model.record import Record
from tuisup.model.states import ExitStatus, Health, ServiceState
from tuisup.model.views import ServiceView


class Event(Record):
    """Something that happened; `seq` grows by one per event, `ts` is Unix time."""

    kind: ClassVar[str] = "event"
    seq: int
    ts: float

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict: `seq`, `ts`, `event` and the event's own fields."""
        data: dict[str, Any] = {"seq": self.seq, "ts": round(self.ts, 6), "event": self.kind}
        for field in self._fields[2:]:  # after seq and ts
            value = getattr(self, field)
            if value is None:
                continue
            data[field] = _plain(value)
        return data


class HostStarted(Event):
    """The host is up and its services are being started."""

    kind: ClassVar[str] = "host_started"
    manifest: str
    services: tuple[str, ...]


class HostStopping(Event):
    """The host is stopping every service."""

    kind: ClassVar[str] = "host_stopping"
    reason: str
    count: int = 0
    """How many services were alive (or about to be) when it began."""


class HostStopped(Event):
    """Every service has stopped; nothing the host started is left running."""

    kind: ClassVar[str] = "host_stopped"


class StateChanged(Event):
    """A service moved from one state to another.

    `pid` and `executor` (the kind the run uses) come with `running`; `exit_code`,
    `signal`, `runtime` and `error` describe the run that just ended, when the change is
    due to an exit.
    """

    kind: ClassVar[str] = "state"
    service: str
    old: ServiceState
    state: ServiceState
    pid: int | None = None
    executor: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    runtime: float | None = None
    error: str | None = None
    reason: str | None = None
    restarts: int = 0
    replica: int | None = None
    """The service's index when it is a replica (`worker.2`: 2)."""
    group: str | None = None
    """The group the service belongs to, if any."""


class HealthChanged(Event):
    """A service's health flag changed (back to `unknown` when its run ends).

    `reason` is the last check's failure (`connection refused`, `HTTP 503`, `exit code 1:
    …`); `failures` how many counted in a row.
    """

    kind: ClassVar[str] = "health"
    service: str
    old: Health
    health: Health
    reason: str | None = None
    failures: int = 0


class RestartScheduled(Event):
    """A service is in backoff and will be started again after `delay` seconds."""

    kind: ClassVar[str] = "restart_scheduled"
    service: str
    attempt: int
    delay: float
    replica: int | None = None
    group: str | None = None


class Output(Event):
    """Lines `first_line .. first_line + count - 1` of a service were kept in its log.

    On the bus it only announces them (the lines are kept in the log store); a subscription
    that asks for them gets them inline, in `lines`, with `dropped` saying how many of those
    announced had already left the store (a subscriber far behind).
    """

    kind: ClassVar[str] = "output"
    service: str
    stream: str
    first_line: int
    count: int
    lines: tuple[str, ...] | None = None
    dropped: int | None = None

    def with_lines(self, lines: tuple[str, ...], dropped: int) -> Output:
        """This event with the lines it announced inline (and how many were gone)."""
        return Output(
            seq=self.seq,
            ts=self.ts,
            service=self.service,
            stream=self.stream,
            first_line=self.first_line,
            count=self.count,
            lines=lines,
            dropped=dropped or None,
        )


class LogFileChanged(Event):
    """A service's log file cannot be written, or can be again, or was deleted and made again.

    Said once per episode: when writing fails, then when it works again. The service and
    its kept lines are never held up by it; `message` is the line its log got about it.
    """

    kind: ClassVar[str] = "log_file"
    service: str
    path: str
    writing: bool
    """Whether lines reach the file from now on."""
    error: str | None = None
    """Why they do not, e.g. `Not a directory`, `Permission denied`, `No space left on device`."""
    message: str


class FilesChanged(Event):
    """Files a service watches changed; it is restarted (unless `paused` says why not)."""

    kind: ClassVar[str] = "files_changed"
    service: str
    paths: tuple[str, ...]
    paused: str | None = None
    """Set when watching this service was paused instead (a restart loop)."""


class HookRan(Event):
    """One run of a service's hook (a command of its `on` table) ended.

    `coalesced` is how many events it ran for: the hook runs once at a time per service,
    and the events that came meanwhile make one more run, with the latest of them. It
    succeeded with exit code 0; otherwise `exit_code` or `signal` says how it ended,
    `timed_out` that it was killed at `hook_timeout`, `error` why it could not run.
    """

    kind: ClassVar[str] = "hook"
    service: str
    hook: str
    """The event it ran on, as keyed in `on`: `exited`, `unhealthy`, ..."""
    command: str
    exit_code: int | None = None
    signal: int | None = None
    error: str | None = None
    timed_out: bool = False
    timeout: float = 10.0
    """The bound of each run (the service's `hook_timeout`)."""
    runtime: float = 0.0
    coalesced: int = 1

    @property
    def succeeded(self) -> bool:
        """Whether it ran and exited with code 0."""
        return self.exit_code == 0 and not self.timed_out

    def describe(self) -> str:
        """`hook "exited" failed with code 2 after 0.1s`, `... timed out after 10s: killed`."""
        what = f'hook "{self.hook}"'
        if self.error is not None:
            text = f"{what} {self.error}"
        elif self.timed_out:
            text = f"{what} timed out after {self.timeout:g}s: killed"
        else:
            status = ExitStatus(code=self.exit_code, signal=self.signal)
            how = "ran in" if self.succeeded else f"failed with {status.describe()} after"
            text = f"{what} {how} {self.runtime:.1f}s"
        if self.coalesced > 1:
            text += f" (for {self.coalesced} events)"
        return text


class WatchToggled(Event):
    """Restarting a service for its changed files was paused, or resumed (`W`, a client)."""

    kind: ClassVar[str] = "watch"
    service: str
    watching: bool


class ManifestReloaded(Event):
    """A changed manifest was applied: services added, removed, restarted or updated.

    `changed` services were restarted for a change to how they run (command, env, ...);
    `updated` ones took a change to how tuisup steers them (restarts, health, dependencies,
    watching, ...) in place, keeping their run.
    """

    kind: ClassVar[str] = "manifest_reloaded"
    manifest: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    updated: tuple[str, ...] = ()

    def summary(self) -> str:
        """Return e.g. `added api; removed old; restarted web; updated db`, or `nothing changed`."""
        parts = [
            f"{what} {', '.join(names)}"
            for what, names in (
                ("added", self.added),
                ("removed", self.removed),
                ("restarted", self.changed),
                ("updated", self.updated),
            )
            if names
        ]
        return "; ".join(parts) or "nothing changed"


class Scaled(Event):
    """A replicated table was scaled (`tuisup scale`, `+`/`-`): it now has `replicas`.

    `added` replicas were made (and started, with autostart), `removed` ones stopped and
    dropped: the highest indices. The others were not touched.
    """

    kind: ClassVar[str] = "scaled"
    service: str
    """The table's name (`worker`)."""
    replicas: int
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


class GroupRestarting(Event):
    """A member of a group failed; the group restarts the members its strategy says.

    One event per group restart: `service` failed, `restarting` are moved (in start
    order: the others are stopped in reverse first), `restarts` counts this one among the
    group's restarts within its `restart_window`.
    """

    kind: ClassVar[str] = "group_restart"
    group: str
    service: str
    restarting: tuple[str, ...]
    strategy: str
    restarts: int = 1

    def describe(self) -> str:
        """`pipeline: consumer failed, restarting consumer, indexer (rest_for_one)`."""
        moved = ", ".join(self.restarting)
        return f"{self.group}: {self.service} failed, restarting {moved} ({self.strategy})"


class GroupFailed(Event):
    """A group gave up: its members are stopped, or (`shutdown`) tuisup stops and exits 1."""

    kind: ClassVar[str] = "group_failed"
    group: str
    reason: str
    """e.g. `group pipeline: 4 restarts in 5s`."""
    on_failure: str = "stop"
    """`stop` (its members) or `shutdown` (everything, exit status 1)."""


class ManifestInvalid(Event):
    """A changed manifest could not be applied; every service keeps running as it was."""

    kind: ClassVar[str] = "manifest_invalid"
    manifest: str
    error: str


class ControlRefused(Event):
    """A process of another user connected to the control socket, and was turned away.

    Said once per user id while the host runs: a client that retries in a loop does not
    flood the log.
    """

    kind: ClassVar[str] = "control_refused"
    pid: int
    """The peer's process id, as the kernel gave it (`SO_PEERCRED`)."""
    uid: int
    """The peer's user id."""


class Missed(Event):
    """The subscriber fell so far behind that `count` events left the ring unread."""

    kind: ClassVar[str] = "missed"
    count: int


class Snapshot(Event):
    """Where every service stands (streams begin with one, and send one after `missed`)."""

    kind: ClassVar[str] = "snapshot"
    services: tuple[ServiceView, ...]


class StatusChanged(Event):
    """Where some services stand now: those that the events just before changed."""

    kind: ClassVar[str] = "status"
    services: tuple[ServiceView, ...]


def changed_services(event: Event) -> tuple[str, ...]:
    """The services whose views `event` changed (an `output` event changes none).

    A control stream follows a batch with such events by their new views (`status`), and
    a client holds the batch until they are in its mirror: both ask this.
    """
    if isinstance(event, Output):
        return ()
    if isinstance(event, ManifestReloaded):
        return (*event.added, *event.changed, *event.updated)
    if isinstance(event, Scaled):
        return event.added
    service = getattr(event, "service", None)
    return (service,) if isinstance(service, str) else ()


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        # An event's tuples hold one kind each: names, paths and lines (an output event's
        # thousands, for every follower of a busy service) are copied as they are.
        if value and isinstance(value[0], str):
            return list(value)
        return [_plain(v) for v in value]
    if isinstance(value, ServiceView):
        return value.to_json()
    return value


EVENTS: dict[str, type[Event]] = {}
"""Every kind of event, by its `event` word."""


def _register() -> None:
    stack: list[type[Event]] = [Event]
    while stack:
        cls = stack.pop()
        EVENTS[cls.kind] = cls
        stack.extend(cls.__subclasses__())


_register()
_ENUMS: dict[str, type[ServiceState] | type[Health]] = {
    "ServiceState": ServiceState,
    "Health": Health,
}
"""The enums a field may hold, by the name its annotation gives them."""


def _annotations(cls: type) -> dict[str, str]:
    """Every field's annotation as written (strings: the module has postponed them)."""
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        found.update(getattr(klass, "__annotations__", {}))
    return found


_ENUM_FIELDS: dict[type[Event], dict[str, type[ServiceState] | type[Health]]] = {}
"""Each kind's fields that hold an enum, with its type: worked out once per kind, not once
per event read (a client reads every event of a busy host)."""


def _enum_fields(cls: type[Event]) -> dict[str, type[ServiceState] | type[Health]]:
    """The fields of `cls` whose annotation names an enum, with the first one named."""
    found = _ENUM_FIELDS.get(cls)
    if found is None:
        found = {}
        for field, annotation in _annotations(cls).items():
            kinds = [_ENUMS[t] for t in annotation.split(" | ") if t in _ENUMS]
            if kinds:
                found[field] = kinds[0]
        _ENUM_FIELDS[cls] = found
    return found


def event_from_json(data: Mapping[str, Any]) -> Event:
    """Read back an event that `to_json` wrote.

    Raises:
        ValueError: The `event` word or a field is not one tuisup knows.
    """
    cls = EVENTS.get(str(data.get("event")))
    if cls is None or cls is Event:
        raise ValueError(f"unknown event {data.get('event')!r}")
    enums = _enum_fields(cls)
    values: dict[str, Any] = {}
    for field in cls._fields:
        if field not in data:
            continue
        value = data[field]
        if field == "services":
            value = tuple(ServiceView.from_json(v) for v in value)
        elif isinstance(value, list):
            value = tuple(value)
        elif value is not None and field in enums:
            value = enums[field](value)
        values[field] = value
    try:
        return cls(**values)
    except TypeError as exc:
        raise ValueError(f"bad {cls.kind} event: {exc}") from None
