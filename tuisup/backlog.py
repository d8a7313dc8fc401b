"""Provides Backlog: what one observer selected of the host's events and has not read yet.

A listener's feeder (`engine/listeners.py`) and a Python service's event feed (`link.py`)
both keep one. It is bounded: when more than `size` events wait, they all go, and a
`missed` event with how many, then a snapshot of where the selected services stand, take
their place; newer events queue behind them. All of them go, not just enough to make room: a
snapshot can only say how things are now, and an event older than it, read after it, would
contradict it. A reader that never reads thus costs a bounded queue, however long it lasts.

Imports no more than the model and the specs: a child process's feed keeps one too.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from tuisup.model.events import EVENTS, Event, Missed, Output, Snapshot
from tuisup.spec import Listen

if TYPE_CHECKING:
    from tuisup.model import ServiceView

NOT_SELECTED = frozenset({"event", "status", "snapshot", "missed"})
"""Kinds never queued: `snapshot` and `missed` come from the backlog itself, `status` is
the control socket's own."""


def selectable() -> tuple[str, ...]:
    """The `event` words an observer can select: every event's but `NOT_SELECTED`.

    Read from the events themselves, so that a new kind of event can be listened to.
    """
    return tuple(sorted(set(EVENTS) - NOT_SELECTED))


class Backlog:
    """The events an observer selected and has not read yet: a snapshot first, then those."""

    def __init__(
        self,
        owner: str,
        selection: Listen,
        size: int,
        views: Callable[[], Mapping[str, ServiceView]],
        first: Mapping[str, ServiceView],
        after: int,
    ) -> None:
        """Begin with a snapshot of `first`, the views as of the event `after`.

        Args:
            owner: The observing service: its own `output` is never queued (it would read
                what it printed, for ever).
            selection: What it observes (a listener's `listen`).
            size: How many events may wait before they are dropped.
            views: Every service's view now, for the snapshot after a drop.
            first: The views its first snapshot holds.
            after: The sequence number of the last event `first` includes.
        """
        self._owner = owner
        self._selection = selection
        self._among = Listen(services=selection.services).wants
        """Whether a service is among those selected, whatever the kinds."""
        self._size = max(1, size)
        self._views = views
        self._queue: deque[Event] = deque()
        self._snapshot: Snapshot | None = self._snapshot_of(first, after)
        """Due before the queue (after `missed`, if any were)."""
        self._missed = 0
        self._first_missed = 0
        self._seen = after
        """The last event taken: a snapshot made now includes it."""

    def __len__(self) -> int:
        """How many events are queued (the snapshot and `missed` not counted)."""
        return len(self._queue)

    def take(self, batch: list[Event]) -> None:
        """Queue what the observer selected of `batch` (`bound` then enforces the size)."""
        if not batch:
            return
        self._seen = batch[-1].seq
        missed: list[Missed] = []
        for event in batch:  # one pass: this runs for every batch, for every observer
            if isinstance(event, Missed):
                missed.append(event)
            elif self.wants(event):
                self._queue.append(event)
        # Fallen off the host's ring, or out of a client's queue (and there, after the
        # events held for their status line): how many of those were selected is unknown,
        # so all count. What is queued gives way to a snapshot of now, which covers it.
        if missed:
            first = min(self._queue[0].seq, missed[0].seq) if self._queue else missed[0].seq
            self._drop(first, len(self._queue) + sum(event.count for event in missed))

    def bound(self) -> None:
        """Drop the queue for `missed` and a snapshot if more than `size` events wait.

        Apart from `take`, so that a reader may first read what it can at once.
        """
        if len(self._queue) > self._size:
            self._drop(self._queue[0].seq, len(self._queue))

    def wants(self, event: Event) -> bool:
        """Whether the observer selected `event`."""
        if event.kind in NOT_SELECTED:
            return False
        service: str | None = getattr(event, "service", None)
        if service == self._owner and isinstance(event, Output):
            return False  # its own output, perhaps made of what it read: a loop
        return self._selection.wants(event.kind, service)

    def next(self) -> Event | None:
        """The next event to read: `missed` and a snapshot first, if due; None if none."""
        if self._missed:
            missed = Missed(seq=self._first_missed, ts=time.time(), count=self._missed)
            self._missed = 0
            return missed
        if self._snapshot is not None:
            snapshot, self._snapshot = self._snapshot, None
            return snapshot
        return self._queue.popleft() if self._queue else None

    def clear(self) -> None:
        """Forget everything (the observer is gone)."""
        self._queue.clear()
        self._snapshot = None
        self._missed = 0

    def _drop(self, first: int, count: int) -> None:
        """Drop the queue (`count` events from `first` on) for a snapshot of now."""
        if not self._missed:
            self._first_missed = first
        self._missed += count
        self._queue.clear()
        self._snapshot = self._snapshot_of(self._views(), self._seen)

    def _snapshot_of(self, views: Mapping[str, ServiceView], seq: int) -> Snapshot:
        """The selected services' views (a replicated service's name selects its replicas)."""
        selected = tuple(view for name, view in views.items() if self._among(Snapshot.kind, name))
        return Snapshot(seq=seq, ts=time.time(), services=selected)
