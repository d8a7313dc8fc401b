"""Streams: a snapshot, then every event as `--no-tui --json` prints it, with lines, views and a
filter on services; `unsubscribe` ends one. And the server knows the host by HostAPI alone."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import tagged_pids, wait_until
from tests.control.raw import Raw, serving, short_folder
from tests.tui.test_protocol import PROTOCOL, OnlyTheProtocol
from tuisup.control.paths import SocketPath
from tuisup.control.server import ControlServer, Limits
from tuisup.engine import Host, ServiceState
from tuisup.model import Health
from tuisup.spec import HealthCheck, HealthKind, Manifest

S = ServiceState


@pytest.fixture
def folder() -> Iterator[Path]:
    with short_folder() as path:
        yield path


def running(*names: str) -> Callable[[dict[str, Any]], bool]:
    return lambda s: all(s[n].state is S.RUNNING for n in names)


def is_running(service: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["event"] == "state" and e["service"] == service and e["state"] == "running"


async def test_a_stream_sends_the_events_as_the_json_printer_does(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    manifest = make_manifest(web="exec sleep 30", db="exec sleep 31")
    async with serving(manifest, folder / "s.sock") as (host, _):
        await wait_until(host, running("web", "db"))
        raw = await Raw.connect(folder / "s.sock")
        answer = await raw.call("subscribe")
        assert answer["result"]["after"] == host.bus.last_seq
        assert answer["result"]["snapshot"] == [v.to_json() for v in host.snapshot().values()]
        await raw.result("restart", name="web")
        events = await raw.events(answer["id"], is_running("web"))
        kept = {event.seq: event.to_json() for event in host.bus.since(answer["result"]["after"])}
        assert events == [kept[e["seq"]] for e in events]
        assert [e["state"] for e in events if e["event"] == "state"] == [
            "stopping",
            "stopped",
            "starting",
            "running",
        ]
        await raw.aclose()


async def test_lines_views_and_a_filter_on_services(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    manifest = make_manifest(web="exec sleep 30", db="exec sleep 31")
    async with serving(manifest, folder / "s.sock") as (host, _):
        await wait_until(host, running("web", "db"))
        raw = await Raw.connect(folder / "s.sock")
        subscribed = await raw.result("subscribe", lines=True, views=True, services=["db"])
        assert [v["service"] for v in subscribed["snapshot"]] == ["db"]
        await raw.result("restart", name="web")  # not about db: nothing of it comes
        await raw.result("restart", name="db")
        events = await raw.events(1, lambda e: e["event"] == "status" and is_db_running(e))
        assert {e.get("service") for e in events if e["event"] != "status"} == {"db"}
        statuses = [e for e in events if e["event"] == "status"]
        assert all([v["service"] for v in s["services"]] == ["db"] for s in statuses)
        assert statuses[-1]["services"][0] == host.snapshot()["db"].to_json()
        wrong = await raw.call("subscribe", services=["dbb"])
        assert wrong["error"]["code"] == "unknown_service"
        await raw.aclose()


def is_db_running(status: dict[str, Any]) -> bool:
    return any(v["service"] == "db" and v["state"] == "running" for v in status["services"])


async def test_output_events_carry_their_lines_when_asked(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    manifest = make_manifest(web=("echo one; echo two; exec sleep 30", {"autostart": False}))
    async with serving(manifest, folder / "s.sock") as (host, _):
        raw = await Raw.connect(folder / "s.sock")
        await raw.result("subscribe", lines=True)
        await raw.result("subscribe")
        await raw.result("start", name="web")
        lines: list[str] = []

        def both(event: dict[str, Any]) -> bool:
            if event["event"] == "output" and event["stream"] == "stdout":
                lines.extend(event["lines"])
            return "two" in lines

        await raw.events(1, both)
        assert lines == ["one", "two"]
        plain = await raw.events(2, lambda e: e["event"] == "output" and e["stream"] == "stdout")
        assert "lines" not in plain[-1]
        await raw.aclose()


async def test_unsubscribe_ends_the_stream(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    manifest = make_manifest(web="exec sleep 30")
    async with serving(manifest, folder / "s.sock") as (host, _):
        await wait_until(host, running("web"))
        raw = await Raw.connect(folder / "s.sock")
        await raw.send({"id": 1, "op": "subscribe"})
        await raw.answer(1)
        assert await raw.ask({"id": 2, "op": "unsubscribe", "args": {"stream": 1}}) == {
            "id": 2,
            "ok": True,
            "result": {},
        }
        raw.streamed.clear()
        await raw.send({"id": 3, "op": "subscribe"})
        await raw.answer(3)
        await raw.result("restart", name="web")
        await raw.events(3, is_running("web"))
        assert [m for m in raw.streamed if m["id"] == 1] == []
        again = await raw.call("unsubscribe", stream=1)
        assert again["error"]["message"] == "unsubscribe: no stream 1"
        await raw.aclose()


async def test_the_server_uses_nothing_but_the_protocol(
    make_manifest: Callable[..., Manifest], folder: Path, token: str
) -> None:
    manifest = make_manifest(web="echo hello; exec sleep 30", db="exec sleep 31")
    host = Host(manifest)
    api = OnlyTheProtocol(host)
    server = ControlServer(api, SocketPath(path=folder / "s.sock"))  # type: ignore[arg-type]
    server.bind()
    async with server, host:
        await wait_until(host, running("web", "db"))
        raw = await Raw.connect(folder / "s.sock")
        await raw.result("subscribe", lines=True, views=True)
        await raw.result("snapshot", services=["web"])
        for op in ("stop", "start", "restart", "kill", "toggle_watch"):
            await raw.result(op, name="web")
        await raw.result("affected", verb="stop", name="db")
        assert await raw.result("tables") == {"tables": {}}  # nothing replicated
        refused = await raw.call("scale", name="web", count=2)  # not replicated
        assert refused["error"]["code"] == "cannot_scale"
        await raw.result("logs", name="web", limit=1)
        await raw.result("processes")
        await raw.result("reopen_logs")
        await raw.result("reload")  # the file does not exist: an answer all the same
        await raw.events(1, lambda e: e["event"] == "manifest_invalid")
        await raw.result("unsubscribe", stream=1)
        await raw.result("shutdown")
        await raw.aclose()
    assert api.refused == []
    assert api.used == PROTOCOL - {"close", "remote"}
    assert not list(tagged_pids(token))


async def test_a_mirror_kept_from_views_ends_equal_to_the_host_when_a_status_drops(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    """Regression: a `status` line that did not fit was dropped without a word (it is no
    event, so no `missed` counted it): a client's mirror stayed stale for good. Here the
    health event comes alone in its batch; it fits the empty outbox, its status does not.
    Any line dropped is now followed, once there is room, by a `snapshot`."""
    check = HealthCheck(
        kind=HealthKind.COMMAND, target="true", argv=("/bin/sh", "-c", "true"), interval=60
    )
    manifest = make_manifest(web=("exec sleep 30", {"healthcheck": check, "autostart": False}))
    limits = Limits(outbox=1)  # a line goes only into an empty outbox
    async with serving(manifest, folder / "s.sock", limits) as (host, _):
        raw = await Raw.connect(folder / "s.sock")
        subscribed = await raw.result("subscribe", views=True)
        mirror = {view["service"]: view for view in subscribed["snapshot"]}
        await raw.result("start", name="web")
        await wait_until(host, lambda s: s["web"].health is Health.HEALTHY)

        def mirrored(event: dict[str, Any]) -> bool:
            if event["event"] in ("snapshot", "status"):
                mirror.update({view["service"]: view for view in event["services"]})
            return mirror["web"] == host.snapshot()["web"].to_json()

        await raw.events(1, mirrored, timeout=5)
        await raw.aclose()


async def test_a_stream_that_joins_a_running_feed_gets_every_event_after_its_snapshot(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    """Streams share one subscription of the host (a feed): one that joins later gets
    each event after its own snapshot, once, and nothing its snapshot already holds."""
    manifest = make_manifest(web="exec sleep 30", tick="while true; echo tick; do sleep 0.01; done")
    async with serving(manifest, folder / "s.sock") as (host, _):
        await wait_until(host, running("web", "tick"))
        first, second = await Raw.connect(folder / "s.sock"), await Raw.connect(folder / "s.sock")
        after_first = (await first.result("subscribe", lines=True))["after"]
        await first.result("restart", name="web")
        after_second = (await second.result("subscribe", lines=True))["after"]
        assert after_second > after_first
        await second.result("restart", name="web")
        last = host.bus.last_seq
        for raw, after in ((first, after_first), (second, after_second)):
            events = await raw.events(1, lambda e, last=last: e["seq"] >= last)
            assert [e["seq"] for e in events] == list(range(after + 1, events[-1]["seq"] + 1))
            await raw.aclose()
