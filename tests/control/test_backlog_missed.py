"""A `missed` that is not first in its batch still reaches an observer's backlog.

Over the socket it seldom is first: the client holds an event until its status line, and a
server that fell behind sends `missed`, then a snapshot, so the batch the snapshot's line
hands over is `[the held event, missed]`. Regression: `Backlog.take` looked for `missed`
at the head of a batch only, and dropped any other (`wants` never selects one): a child's
Python service (`Context.events`) was never told it had missed events, and got no snapshot.
"""

from __future__ import annotations

import asyncio

import anyio

from tests.control.raw import short_folder
from tests.control.test_client import Scripted, view
from tuisup.backlog import Backlog
from tuisup.control import protocol
from tuisup.engine import ServiceState
from tuisup.model import ServiceView
from tuisup.model import events as ev
from tuisup.spec import Listen

S = ServiceState


def backlog(views: dict[str, ServiceView], after: int) -> Backlog:
    """An observer's backlog of every event, read down to its first snapshot."""
    found = Backlog("observer", Listen(), 100, lambda: views, views, after)
    assert isinstance(found.next(), ev.Snapshot) and found.next() is None
    return found


def drained(found: Backlog) -> list[ev.Event]:
    return list(iter(found.next, None))


async def test_a_missed_after_a_held_event_reaches_a_child_services_backlog() -> None:
    peer = Scripted()
    with short_folder() as folder:
        server = await asyncio.start_unix_server(peer.serve, folder / "s.sock")
        remote, own = await peer.connect(folder / "s.sock", [view("web", S.STOPPED)])
        assert own is not None
        subscription = await remote.subscribe()
        observer = Backlog(
            "observer", Listen(), 100, remote.snapshot, subscription.snapshot, subscription.after
        )
        assert isinstance(observer.next(), ev.Snapshot) and observer.next() is None
        # The server's outbox overflowed after this event: its status line was dropped with
        # the 5 events after it, and `missed` and a snapshot of now were sent instead.
        started = ev.StateChanged(
            seq=2, ts=0.0, service="web", old=S.STOPPED, state=S.RUNNING, pid=7
        )
        missed = ev.Missed(seq=3, ts=0.0, count=5)
        now = ev.Snapshot(seq=7, ts=0.0, services=(view("web", S.RUNNING, 8),))
        for event in (started, missed, now):  # read by the client at once
            peer.send(protocol.stream(own, event.to_json()))
        with anyio.fail_after(10):
            batch = await anext(aiter(subscription))
        assert [e.kind for e in batch] == ["state", "missed"]
        observer.take(batch)
        observer.bound()
        read = drained(observer)
        assert [e.kind for e in read] == ["missed", "snapshot"]
        assert isinstance(read[0], ev.Missed) and read[0].count == 6  # the held one went too
        assert isinstance(read[1], ev.Snapshot) and read[1].services[0].pid == 8
        await remote.close()
        server.close()


def test_a_missed_amid_a_batch_drops_the_queue_and_what_the_batch_brings() -> None:
    """What came before `missed` would be read after the snapshot; what came after is in it."""
    views = {"web": view("web", S.RUNNING, 7)}
    found = backlog(views, after=1)
    found.take([ev.Output(seq=2, ts=0.0, service="web", stream="stdout", first_line=1, count=1)])
    found.take(
        [
            ev.Output(seq=3, ts=0.0, service="web", stream="stdout", first_line=2, count=1),
            ev.Missed(seq=4, ts=0.0, count=3),
            ev.Output(seq=7, ts=0.0, service="web", stream="stdout", first_line=9, count=1),
        ]
    )
    read = drained(found)
    assert [e.kind for e in read] == ["missed", "snapshot"]
    assert isinstance(read[0], ev.Missed) and (read[0].seq, read[0].count) == (2, 6)
    assert isinstance(read[1], ev.Snapshot) and read[1].seq == 7
