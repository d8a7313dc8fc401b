"""Provides the streams: each client's `subscribe`, fed from one subscription of the host.

    {"id": 3, "stream": {"seq": 41, "ts": ..., "event": "state", "service": "web", ...}}

Each event goes out as `--no-tui --json` prints it. However many clients follow the host,
the server takes one subscription of it (one with lines, one without: a `Feed`), encodes
each event once, and hands it to every `EventStream` of that kind; twenty clients following
a busy service cost little more than one.

A stream never waits for its client: it offers each line to its connection's outbox. When
one does not fit (the client reads slower than the host speaks), that line and every one
after it are dropped, in order, until the outbox has room again; then the stream sends a
`missed` event with the count and a `snapshot` event of where its services stand, and goes
on. A client thus never loses an event without being told, and never holds up the host.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import anyio
from anyio.abc import TaskGroup

from tuisup.api import HostAPI, Subscription
from tuisup.control import protocol
from tuisup.control.ops import StreamOptions, Subscribed, ViewCoder, close_iterator
from tuisup.control.outbox import Outbox
from tuisup.model import ServiceView
from tuisup.model.events import (
    Event,
    HostStopped,
    ManifestReloaded,
    Missed,
    Scaled,
    Snapshot,
    StatusChanged,
    changed_services,
)
from tuisup.spec import selects

Coded = list[tuple[Event, bytes]]
"""A batch of events, each with its JSON (`protocol.dumps`)."""


def coded(event: Event) -> bytes:
    """An event's JSON, as stream lines carry it."""
    return protocol.dumps(event.to_json())


class Views:
    """The host's views, taken at most once per batch, for the streams that want them."""

    def __init__(self, api: HostAPI) -> None:
        self._api = api
        self._views: dict[str, ServiceView] | None = None

    def __call__(self) -> dict[str, ServiceView]:
        """Every service's view, as of the first call."""
        if self._views is None:
            self._views = self._api.snapshot()
        return self._views


class EventStream:
    """One client's stream: its filter, its views, its drops, over the feed it is on."""

    def __init__(
        self,
        api: HostAPI,
        id_: int,
        subscribed: Subscribed,
        outbox: Outbox,
        ended: Callable[[EventStream, str | None], None],
        coder: ViewCoder,
    ) -> None:
        """Forward to `outbox` what comes after `subscribed`'s snapshot.

        Args:
            api: The host (for a snapshot after lines were dropped).
            id_: The `subscribe` request's id, which every line carries.
            subscribed: The subscription the answer's snapshot came from.
            outbox: The connection's.
            ended: Told when the stream ends by itself: after `host_stopped` (None), or
                because of a bug (its text).
            coder: The server's, which encodes each spec once for every line that has it.
        """
        self.api = api
        self.id = id_
        self.options: StreamOptions = subscribed.options
        self.after = subscribed.subscription.after
        """Events up to this one are in the snapshot the client was answered."""
        self.outbox = outbox
        self.ended = ended
        self.coder = coder
        self.behind = False
        """Lines were dropped: nothing more goes until a `missed` and a `snapshot` have."""
        self.dropped = 0
        """Events dropped since (a `status` dropped is not an event: it is not counted)."""
        self._first_dropped = 0
        self._last_seq = self.after

    def forward(self, batch: Coded, views: Views) -> bool:
        """Offer one batch; return whether the host has stopped (nothing comes after)."""
        changed: set[str] = set()
        stopped = reloaded = False
        last_word = b""
        for event, data in batch:
            if isinstance(event, Missed):  # the feed fell off the host's ring
                self._missed(event)
                continue
            if event.seq <= self.after:  # in the snapshot already (joined a running feed)
                continue
            self._last_seq = event.seq
            if not self._wanted(event):
                continue
            if isinstance(event, HostStopped):  # its last word: it goes, full outbox or not
                stopped = True
                last_word = data
                continue
            self._offer(event.seq, data, counted=True)
            changed.update(changed_services(event))
            reloaded = reloaded or isinstance(event, ManifestReloaded | Scaled)
        if self.options.views and changed:
            now = views()
            if reloaded:  # the set of services, and their order, changed: all of them
                kind, names = Snapshot.kind, list(now)
            else:
                kind, names = StatusChanged.kind, [n for n in now if n in changed]
            chosen = (now[n] for n in names if self._about(n))
            self._offer(self._last_seq, self._views_line(kind, chosen), counted=False)
        if self.behind and (stopped or self.outbox.roomy):
            self.caught_up()  # at once if the ring dropped them; at the end, before its end
        if stopped:
            self.outbox.put(self._line(last_word))
        return stopped

    def caught_up(self) -> None:
        """The outbox has room again: say what was dropped, then where things stand."""
        if not self.behind:
            return
        if self.dropped:
            missed = Missed(seq=self._first_dropped, ts=time.time(), count=self.dropped)
            self.outbox.put(self._line(coded(missed)))
        views = self.api.snapshot()  # now: it comes after everything dropped
        chosen = (view for name, view in views.items() if self._about(name))
        self.outbox.put(self._line(self._views_line(Snapshot.kind, chosen)))
        self.behind, self.dropped = False, 0

    def _wanted(self, event: Event) -> bool:
        service = getattr(event, "service", None)
        return service is None or self._about(service)

    def _about(self, name: str) -> bool:
        return selects(self.options.services, name)

    def _offer(self, seq: int, data: bytes, *, counted: bool) -> None:
        """Send event `seq` if the outbox takes it (`counted`: in a `missed`, if not)."""
        if not self.behind and self.outbox.offer(self._line(data)):
            return
        self._drop(seq, 1 if counted else 0)

    def _missed(self, event: Missed) -> None:
        """Events the feed never read: those after this stream's snapshot are dropped."""
        last = event.seq + event.count - 1
        first = max(event.seq, self.after + 1)
        if last >= first:
            self._last_seq = last
            self._drop(first, last - first + 1)

    def _drop(self, seq: int, count: int) -> None:
        if not self.dropped and count:
            self._first_dropped = seq
        self.dropped += count
        self.behind = True

    def _line(self, data: bytes) -> bytes:
        return protocol.stream_line(self.id, data)

    def _views_line(self, kind: str, views: Iterable[ServiceView]) -> bytes:
        """A `status` or `snapshot` event as of the last seq, as `coded` would encode it.

        Its specs go through the server's `ViewCoder`: encoding each spec again for every
        line of every stream was most of what a status line cost.
        """
        data = {"seq": self._last_seq, "ts": round(time.time(), 6), "event": kind}
        data["services"] = self.coder(views)
        return protocol.dumps(data)


class Feed:
    """One subscription of the host, its events encoded once for every stream on it."""

    def __init__(self, api: HostAPI, subscription: Subscription) -> None:
        self.api = api
        self.subscription = subscription
        self.streams: dict[EventStream, None] = {}
        self.scope = anyio.CancelScope()
        """Cancelled once no stream is left on it."""

    async def run(self) -> None:
        """Hand each batch to the streams, until none is left."""
        batches = aiter(self.subscription)
        with self.scope:
            try:
                async for batch in batches:
                    self._hand(batch)
            except Exception as exc:  # a bug, or the host's: every stream says it, and ends
                for stream in list(self.streams):
                    self._end(stream, f"{type(exc).__name__}: {exc}")
            finally:
                await close_iterator(batches)

    def _hand(self, batch: list[Event]) -> None:
        encoded = [(event, coded(event)) for event in batch]
        views = Views(self.api)
        for stream in list(self.streams):
            try:
                stopped = stream.forward(encoded, views)
            except Exception as exc:  # a bug: this stream ends, saying so; not the others
                self._end(stream, f"{type(exc).__name__}: {exc}")
            else:
                if stopped:
                    self._end(stream, None)

    def _end(self, stream: EventStream, error: str | None) -> None:
        self.streams.pop(stream, None)
        stream.ended(stream, error)


class Feeds:
    """The server's feeds: one with lines, one without, while some stream is on each."""

    def __init__(self, api: HostAPI, tg: TaskGroup) -> None:
        self.api = api
        self._tg = tg
        self._feeds: dict[bool, Feed] = {}
        self._on: dict[EventStream, Feed] = {}

    def join(self, stream: EventStream, subscription: Subscription) -> None:
        """Put `stream` on the feed of its kind; `subscription` starts one if there is none.

        A new feed starts from the stream's own subscription: nothing after its snapshot
        is missed. A running feed is at or before that snapshot (it reads the host's
        events in order, and has not read past the newest); what the stream has already,
        it skips.
        """
        lines = stream.options.lines
        feed = self._feeds.get(lines)
        if feed is None:
            feed = self._feeds[lines] = Feed(self.api, subscription)
            self._tg.start_soon(self._run, lines, feed)
        feed.streams[stream] = None
        self._on[stream] = feed

    def leave(self, stream: EventStream) -> None:
        """Take `stream` off its feed; a feed left with none stops."""
        feed = self._on.pop(stream, None)
        if feed is None:
            return
        feed.streams.pop(stream, None)
        if not feed.streams:
            self._stop(feed)

    def _stop(self, feed: Feed) -> None:
        feed.scope.cancel()
        for lines, known in list(self._feeds.items()):
            if known is feed:
                del self._feeds[lines]

    async def _run(self, lines: bool, feed: Feed) -> None:
        try:
            await feed.run()
        finally:
            for stream in [s for s, f in self._on.items() if f is feed]:
                del self._on[stream]
            if self._feeds.get(lines) is feed:
                del self._feeds[lines]
