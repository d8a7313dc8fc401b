"""`tuisup logs -f`'s follower, fed by a server that says exactly what the test tells it."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest

from tests.control.test_client import Scripted, folder, view
from tuisup.control import protocol
from tuisup.control.follow import LogFollower
from tuisup.model import ServiceState
from tuisup.model import events as ev

__all__ = ["folder"]  # the fixture


def output(seq: int, first: int, lines: list[str], dropped: int = 0) -> dict[str, object]:
    event = ev.Output(
        seq=seq,
        ts=0.0,
        service="web",
        stream="stdout",
        first_line=first,
        count=len(lines) + dropped,
        lines=tuple(lines),
        dropped=dropped or None,
    )
    return event.to_json()


async def test_a_gap_is_marked_where_it_is_between_the_lines_of_one_batch(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: the mark of lines dropped in a batch came before that batch's earlier lines."""
    peer = Scripted()
    server = await asyncio.start_unix_server(peer.serve, folder / "s.sock")
    host, _ = await peer.connect(folder / "s.sock", None)
    options = argparse.Namespace(json=False, follow=True, no_color=True, timestamps=False)
    follower = LogFollower(host, ["web"], options)
    history = asyncio.create_task(follower.history(None))
    stream = (await peer.expect("subscribe"))["id"]
    web = view("web", ServiceState.RUNNING).to_json()
    peer.send(protocol.ok(stream, {"after": 1, "snapshot": [web]}))
    logs = (await peer.expect("logs"))["id"]
    peer.send(protocol.ok(logs, {"batches": []}))
    await history
    # One read: two output events, the second missing two lines that left the log unread.
    peer.send(protocol.stream(stream, output(2, 1, ["a", "b"])))
    peer.send(protocol.stream(stream, output(3, 3, ["e"], dropped=2)))
    peer.send(protocol.stream(stream, output(4, 6, [], dropped=1)))
    peer.send(protocol.stream(stream, output(5, 7, ["g"])))
    peer.send(protocol.stream(stream, ev.HostStopped(seq=6, ts=0.0).to_json()))
    assert await asyncio.wait_for(follower.follow(), 10) == 0
    assert capsys.readouterr().out.splitlines() == [
        "web | a",
        "web | b",
        "[tuisup: 2 lines of web left the log unread]",
        "web | e",
        "[tuisup: 1 line of web left the log unread]",
        "web | g",
    ]
    await host.close()
    server.close()
