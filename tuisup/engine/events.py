"""Provides the engine's events and the bus that announces them to every subscriber.

Events are small frozen records stamped with a sequence number and a wall-clock time.
The bus keeps the most recent ones in a ring; each subscriber reads at its own pace from
its own cursor, so a slow subscriber never stalls the host: it only falls behind, and if
it falls off the ring it is told how many events it missed.

The records are not `dataclasses`: a frozen dataclass compiles six methods from source as
its module is imported (0.55 ms a class), and the dozen events made this module the
costliest of tuisup's own imports, 7.5 ms of every start. `Record` gives the same things
(keyword-only fields with defaults, slots, frozen, a repr; type checkers read it as a
dataclass through `dataclass_transform`) with one `__init__` shared by every event.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar, TypeVar, dataclass_transform

import anyio

_MISSING: Any = object()


@dataclass_transform(kw_only_default=True, frozen_default=True)
class _RecordType(type):
    """Gives each record class its slots and its fields (its own after its bases')."""

    _fields: tuple[str, ...]
    _defaults: dict[str, Any]

    def __new__(
        mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kw: Any
    ) -> _RecordType:
        own = [
            field
            for field, annotation in namespace.get("__annotations__", {}).items()
            if not str(annotation).startswith("ClassVar")
        ]
        defaults = {field: namespace.pop(field) for field in own if field in namespace}
        namespace["__slots__"] = tuple(own)
        cls = super().__new__(mcs, name, bases, namespace, **kw)
        cls._fields = (*getattr(cls, "_fields", ()), *own)
        cls._defaults = {**getattr(cls, "_defaults", {}), **defaults}
        return cls


class Record(metaclass=_RecordType):
    """A frozen record: keyword-only fields, each with its default if it has one."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]]
    _defaults: ClassVar[dict[str, Any]]

    def __init__(self, **values: Any) -> None:
        for field in self._fields:
            value = values.pop(field, self._defaults.get(field, _MISSING))
            if value is _MISSING:
                raise TypeError(f"{type(self).__name__}() is missing {field!r}")
            object.__setattr__(self, field, value)
        if values:
            raise TypeError(f"{type(self).__name__}() has no field {', '.join(values)}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot delete {name!r}")

    def __repr__(self) -> str:
        shown = ", ".join(f"{field}={getattr(self, field)!r}" for field in self._fields)
        return f"{type(self).__name__}({shown})"


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


class Health(enum.StrEnum):
    """A running service's health, by its health check; every run starts `unknown`."""

    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


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
            data[field] = value.value if isinstance(value, enum.Enum) else value
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


class Output(Event):
    """Lines `first_line .. first_line + count - 1` of a service were kept in its log."""

    kind: ClassVar[str] = "output"
    service: str
    stream: str
    first_line: int
    count: int


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


class ManifestInvalid(Event):
    """A changed manifest could not be applied; every service keeps running as it was."""

    kind: ClassVar[str] = "manifest_invalid"
    manifest: str
    error: str


class Missed(Event):
    """The subscriber fell so far behind that `count` events left the ring unread."""

    kind: ClassVar[str] = "missed"
    count: int


E = TypeVar("E", bound=Event)


class Bus:
    """Stamps events and keeps the last `capacity` of them for subscribers."""

    def __init__(self, capacity: int = 65_536) -> None:
        self._ring: deque[Event] = deque(maxlen=capacity)
        self._next_seq = 1
        self._waiters: set[anyio.Event] = set()

    @property
    def capacity(self) -> int:
        """How many events are kept: a subscriber further behind gets `Missed`."""
        return self._ring.maxlen or 0

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest event (0 before any)."""
        return self._next_seq - 1

    def emit(self, event_type: type[E], **values: Any) -> E:
        """Create an event of `event_type`, stamp it, keep it and wake the subscribers."""
        event = event_type(seq=self._next_seq, ts=time.time(), **values)
        self._next_seq += 1
        self._ring.append(event)
        if self._waiters:
            waiters, self._waiters = self._waiters, set()
            for waiter in waiters:
                waiter.set()
        return event

    def since(self, seq: int) -> Iterator[Event]:
        """Yield the kept events after `seq`, a `Missed` first if some were dropped."""
        ring = self._ring
        if not ring or seq >= self.last_seq:
            return
        first = ring[0].seq
        if seq + 1 < first:
            yield Missed(seq=seq + 1, ts=time.time(), count=first - seq - 1)
        # Readers are near the end: walk back to their cursor, O(new events), not O(ring).
        newer: list[Event] = []
        for event in reversed(ring):
            if event.seq <= seq:
                break
            newer.append(event)
        yield from reversed(newer)

    async def wait_after(self, seq: int) -> None:
        """Return once an event newer than `seq` exists."""
        while self.last_seq <= seq:
            waiter = anyio.Event()
            self._waiters.add(waiter)
            await waiter.wait()

    async def stream(self, after: int) -> AsyncIterator[list[Event]]:
        """Yield every event after `after`, in batches of what has arrived."""
        cursor = after
        while True:
            await self.wait_after(cursor)
            batch = list(self.since(cursor))
            cursor = batch[-1].seq
            yield batch
