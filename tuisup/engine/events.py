"""Provides the bus that announces the engine's events to every subscriber.

The events themselves are plain data (`tuisup.model.events`), re-exported here for the
engine's own modules. The bus keeps the most recent ones in a ring; each subscriber reads
at its own pace from its own cursor, so a slow subscriber never stalls the host: it only
falls behind, and if it falls off the ring it is told how many events it missed.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import anyio

from tuisup.model.events import Event as Event
from tuisup.model.events import FilesChanged as FilesChanged
from tuisup.model.events import GroupFailed as GroupFailed
from tuisup.model.events import GroupRestarting as GroupRestarting
from tuisup.model.events import HealthChanged as HealthChanged
from tuisup.model.events import HookRan as HookRan
from tuisup.model.events import HostStarted as HostStarted
from tuisup.model.events import HostStopped as HostStopped
from tuisup.model.events import HostStopping as HostStopping
from tuisup.model.events import LogFileChanged as LogFileChanged
from tuisup.model.events import ManifestInvalid as ManifestInvalid
from tuisup.model.events import ManifestReloaded as ManifestReloaded
from tuisup.model.events import Missed as Missed
from tuisup.model.events import Output as Output
from tuisup.model.events import RestartScheduled as RestartScheduled
from tuisup.model.events import Scaled as Scaled
from tuisup.model.events import Snapshot as Snapshot
from tuisup.model.events import StateChanged as StateChanged
from tuisup.model.events import StatusChanged as StatusChanged
from tuisup.model.events import WatchToggled as WatchToggled
from tuisup.model.states import Health as Health
from tuisup.model.states import ServiceState as ServiceState

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
