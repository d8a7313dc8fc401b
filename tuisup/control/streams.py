"""Provides EventStream: one `subscribe` of a client, forwarded as stream lines.

    {"id": 3, "stream": {"seq": 41, "ts": ..., "event": "state", "service": "web", ...}}

Each event goes out as `--no-tui --json` prints it. The stream never waits for its client:
it reads the host's events as they come and offers each line to the connection's outbox.
When one does not fit (the client reads slower than the host speaks), that line and every
one after it are dropped, in order, until the outbox has room again; then the stream sends
a `missed` event with the count and a `snapshot` event of where every service stands, and
goes on. A client thus never loses an event without being told, and never holds up the host.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import anyio

from tuisup.api import HostAPI
from tuisup.control import protocol
from tuisup.control.ops import Subscribed, close_iterator
from tuisup.control.outbox import Outbox
from tuisup.model.events import (
    Event,
    HostStopped,
    ManifestReloaded,
    Missed,
    Output,
    Snapshot,
    StatusChanged,
)


class EventStream:
    """Forwards one subscription to one client, dropping (and saying so) when it lags."""

    def __init__(self, api: HostAPI, id_: int, subscribed: Subscribed, outbox: Outbox) -> None:
        self.api = api
        self.id = id_
        self.options = subscribed.options
        self.subscription = subscribed.subscription
        self.outbox = outbox
        self.scope = anyio.CancelScope()
        """Cancelled by `unsubscribe`, or when its connection ends."""
        self.behind = False
        """Lines were dropped: nothing more goes until a `missed` and a `snapshot` have."""
        self.dropped = 0
        """Events dropped since (a `status` dropped is not an event: it is not counted)."""
        self._first_dropped = 0
        self._last_seq = self.subscription.after

    async def run(self) -> None:
        """Forward events until cancelled, or until the host has stopped."""
        batches = aiter(self.subscription)
        with self.scope:
            try:
                async for batch in batches:
                    if self._forward(batch):
                        self.caught_up()  # its last word, even if the outbox is full
                        return
            finally:
                await close_iterator(batches)

    def caught_up(self) -> None:
        """The outbox has room again: say what was dropped, then where things stand."""
        if not self.behind:
            return
        if self.dropped:
            missed = Missed(seq=self._first_dropped, ts=time.time(), count=self.dropped)
            self._put(missed.to_json())
        self._put(self._snapshot().to_json())
        self.behind, self.dropped = False, 0

    def _forward(self, batch: list[Event]) -> bool:
        """Offer one batch; return whether the host has stopped (nothing comes after)."""
        changed: set[str] = set()
        stopped = False
        for event in batch:
            self._last_seq = event.seq
            if isinstance(event, Missed):  # fell off the host's ring: same as dropped here
                self._drop(event.seq, event.count)
                continue
            if not self._wanted(event):
                continue
            self._offer(event, counted=True)
            changed.update(_changes(event))
            stopped = stopped or isinstance(event, HostStopped)
        if self.options.views and changed:
            views = self.api.snapshot()
            status = StatusChanged(
                seq=self._last_seq,
                ts=time.time(),
                services=tuple(views[n] for n in views if n in changed and self._about(n)),
            )
            self._offer(status, counted=False)
        if self.behind and self.outbox.roomy:  # the host's own ring dropped them
            self.caught_up()
        return stopped

    def _wanted(self, event: Event) -> bool:
        service = getattr(event, "service", None)
        return service is None or self._about(service)

    def _about(self, name: str) -> bool:
        wanted = self.options.services
        return wanted is None or name in wanted

    def _offer(self, event: Event, *, counted: bool) -> None:
        """Send one event if the outbox takes it (`counted`: in a `missed`, if not)."""
        if not self.behind and self.outbox.offer(self._line(event.to_json())):
            return
        self._drop(event.seq, 1 if counted else 0)

    def _drop(self, seq: int, count: int) -> None:
        if not self.dropped and count:
            self._first_dropped = seq
        self.dropped += count
        self.behind = True

    def _put(self, event: dict[str, Any]) -> None:
        self.outbox.put(self._line(event))

    def _line(self, event: dict[str, Any]) -> bytes:
        return protocol.encode(protocol.stream(self.id, event))

    def _snapshot(self) -> Snapshot:
        views = self.api.snapshot()
        chosen = tuple(view for name, view in views.items() if self._about(name))
        return Snapshot(seq=self._last_seq, ts=time.time(), services=chosen)


def _changes(event: Event) -> Iterable[str]:
    """The services whose views `event` changed (an output event changes none)."""
    if isinstance(event, Output):
        return ()
    if isinstance(event, ManifestReloaded):
        return (*event.added, *event.changed, *event.updated)
    service = getattr(event, "service", None)
    return (service,) if isinstance(service, str) else ()
