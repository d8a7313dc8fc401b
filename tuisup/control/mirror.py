"""Provides what a RemoteHost keeps of its host: the mirror of views, streams, subscriptions.

The `Mirror` holds every service's view, each as of the seq of the event it was sent
after, so that a view sent late (by a stream that is behind) never replaces a newer one. A
`Stream` is one `subscribe` the server sends: it holds a batch of events until the status
line that follows it is in the mirror, then hands the batch to its `RemoteSubscription`s,
whose queues are bounded in bytes.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Any

from tuisup.model import Event, ServiceView, SpecView
from tuisup.model import events as ev

QUEUE_MAX = 16 << 20
"""Bytes of events a subscription holds for a reader that is behind, before it drops them."""
HOLD = 0.25
"""Seconds a batch waits for its status line at most (a server that sends none)."""


class Mirror:
    """Every service's view, as the host last sent it; in manifest order."""

    def __init__(self) -> None:
        self.views: dict[str, ServiceView] = {}
        self._seen: dict[str, int] = {}
        """The seq each view is as of (an older one never replaces it)."""
        self._specs: dict[str, tuple[dict[str, Any], SpecView]] = {}
        """Each service's spec as last read, and its JSON: the same JSON is not read again."""

    def read(self, data: dict[str, Any]) -> ServiceView:
        """A view from its JSON, with the spec read before if the host sent the same one.

        A view sent without its spec (`snapshot` with `spec: false`) gets the one known.
        """
        raw = data.get("spec")
        known = self._specs.get(data["service"])
        if known is not None and (raw is None or known[0] == raw):
            return ServiceView.from_json(data, spec=known[1])
        view = ServiceView.from_json(data)
        if isinstance(raw, dict):
            self._specs[view.name] = (raw, view.spec)
        return view

    def take(self, views: list[ServiceView], seq: int, *, whole: bool) -> None:
        """Keep views as of `seq`; `whole`: they are every service there is, in order."""
        for view in views:
            if seq >= self._seen.get(view.name, 0):
                self.views[view.name] = view
                self._seen[view.name] = seq
        if whole:
            given = {view.name for view in views}
            ordered = {view.name: self.views[view.name] for view in views}
            newer = {  # came after this snapshot was taken: kept
                name: view
                for name, view in self.views.items()
                if name not in given and self._seen.get(name, 0) > seq
            }
            self.views = ordered | newer

    def forget(self, names: Iterable[str], seq: int) -> None:
        """Services that left the manifest at `seq`."""
        for name in names:
            if self._seen.get(name, 0) <= seq:
                self.views.pop(name, None)


class RemoteSubscription:
    """A subscription over the socket: the snapshot, then batches of events (the Protocol's).

    Batches wait in a queue bounded in bytes; a reader that falls behind gets a `missed`
    event instead of what did not fit (the mirror, `snapshot()`, has kept up regardless).
    Iteration ends when the connection does.
    """

    def __init__(self, snapshot: dict[str, ServiceView], after: int) -> None:
        self.snapshot = snapshot
        self.after = after
        self._batches: deque[tuple[list[Event], int]] = deque()
        self._size = 0
        self._missed = 0
        self._missed_from = 0
        self._ended = False
        self._wake = asyncio.Event()

    def __aiter__(self) -> AsyncIterator[list[Event]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[list[Event]]:
        while True:
            if self._batches:
                batch, size = self._batches.popleft()
                self._size -= size
                yield batch
            elif self._missed:
                missed = ev.Missed(seq=self._missed_from, ts=time.time(), count=self._missed)
                self._missed = 0
                yield [missed]
            elif self._ended:
                return
            else:
                self._wake.clear()
                await self._wake.wait()

    def push(self, batch: list[Event], size: int) -> None:
        """Queue a batch, or count it missed: the queue is full, or has not drained since."""
        if self._missed or self._size + size > QUEUE_MAX:
            if not self._missed:
                self._missed_from = batch[0].seq
            self._missed += len(batch)
        else:
            self._batches.append((batch, size))
            self._size += size
        self._wake.set()

    def end(self) -> None:
        """No more batches: iteration ends once the queue is read."""
        self._ended = True
        self._wake.set()


class Stream:
    """One stream the server sends (a `subscribe`): held events, and who reads them."""

    def __init__(self, id_: int, *, lines: bool, filtered: bool, mirror: bool) -> None:
        self.id = id_
        self.lines = lines
        self.filtered = filtered
        self.mirror = mirror
        """The connection's own stream, that keeps `snapshot()` up to date."""
        self.listeners: weakref.WeakSet[RemoteSubscription] = weakref.WeakSet()
        self.open = False
        self.last_seq = 0
        """The seq of the last event read on it."""
        self.delivered = 0
        """The seq of the last event handed to the listeners."""
        self.held: list[Event] = []
        """Events read, not handed over yet: waiting for the status line after them."""
        self.held_size = 0
        self.wants_status = False
        self.timer: asyncio.TimerHandle | None = None

    def hold(self, event: Event, size: int) -> None:
        """Keep an event until the end of the read, or its status line if it needs one."""
        self.held.append(event)
        self.held_size += size
        # The server sends views after exactly these (`changed_services`): wait for them.
        self.wants_status = self.wants_status or bool(ev.changed_services(event))

    def flush(self) -> None:
        """Hand the held events to every reader, as one batch."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.wants_status = False
        if not self.held:
            return
        batch, size = self.held, self.held_size
        self.held, self.held_size = [], 0
        self.delivered = batch[-1].seq
        for subscription in list(self.listeners):
            subscription.push(batch, size)
