"""RemoteHost: the HostAPI over a real socket to a real host (served in this process)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import tagged_pids, wait_until, write_manifest
from tests.control.raw import serving, short_folder
from tuisup.control import client, mirror, protocol
from tuisup.control.client import ConnectionLost, RemoteHost
from tuisup.control.paths import SocketPath
from tuisup.control.server import ControlServer
from tuisup.engine import Host, ServiceState
from tuisup.manifest import load_manifest
from tuisup.model import ServiceView, SpecView, TableView, UnknownService
from tuisup.model import events as ev
from tuisup.spec import Manifest, RestartPolicy

S = ServiceState


@pytest.fixture
def folder() -> Iterator[Path]:
    with short_folder() as path:
        yield path


def running(*names: str) -> Callable[[dict[str, ServiceView]], bool]:
    return lambda s: all(s[n].state is S.RUNNING for n in names)


async def mirrored(remote: RemoteHost, predicate: Callable[[dict[str, Any]], bool]) -> None:
    """Wait, batch by batch, until the client's mirror satisfies `predicate`."""
    subscription = await remote.subscribe()
    if predicate(remote.snapshot()):
        return
    with anyio.fail_after(10):
        async for _ in subscription:
            if predicate(remote.snapshot()):
                return
    raise AssertionError("the connection ended first")


def test_importing_the_client_and_the_verbs_loads_neither_anyio_nor_textual() -> None:
    code = (
        "import sys, tuisup.control.client, tuisup.control.verbs, tuisup.control.follow, "
        "tuisup.control.up; import json; print(json.dumps(sorted(sys.modules)))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    modules = json.loads(found)
    assert not [m for m in modules if m.startswith(("anyio", "textual", "tuisup.engine"))]


async def test_hello_snapshot_and_commands_act_on_the_host(
    make_manifest: Callable[..., Manifest], folder: Path, token: str
) -> None:
    manifest = make_manifest(web="exec sleep 30", db="exec sleep 31")
    async with serving(manifest, folder / "s.sock") as (host, _):
        await wait_until(host, running("web", "db"))
        remote = await RemoteHost.connect(folder / "s.sock")
        assert remote.remote and remote.manifest_path == str(manifest.path)
        assert remote.hello["socket"] == str(folder / "s.sock")
        assert remote.snapshot() == host.snapshot()  # the mirror, read locally
        before = host.snapshot()["web"].pid
        await remote.restart("web")  # answered once done
        assert host.snapshot()["web"].state is S.RUNNING
        assert host.snapshot()["web"].pid != before
        await remote.stop("db")
        assert host.snapshot()["db"].state is S.STOPPED
        assert await remote.affected("start", "db") == []
        await mirrored(remote, lambda s: s["db"].state is S.STOPPED)
        stats = await remote.processes()
        assert [p.pid for p in stats.trees["web"]][:1] == [host.snapshot()["web"].pid]
        await remote.close()
        assert host.snapshot()["web"].state is S.RUNNING  # closing detached, nothing more
    assert not list(tagged_pids(token))


async def test_errors_come_back_as_the_models_classes(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    async with serving(make_manifest(web="exec sleep 30"), folder / "s.sock"):
        remote = await RemoteHost.connect(folder / "s.sock")
        with pytest.raises(UnknownService) as raised:
            await remote.restart("wbe")
        assert str(raised.value) == 'unknown service "wbe" (did you mean "web"?)'
        with pytest.raises(UnknownService):
            await remote.logs("wbe")
        assert await remote.toggle_watch("web") is None  # it watches nothing
        await remote.close()


async def test_a_subscription_with_lines_carries_them_and_filters_by_service(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    manifest = make_manifest(
        web=("echo hello; exec sleep 30", {"restart": RestartPolicy.NEVER}),
        db="echo other; exec sleep 31",
    )
    async with serving(manifest, folder / "s.sock") as (host, _):
        remote = await RemoteHost.connect(folder / "s.sock", mirror=False)
        subscription = await remote.subscribe(lines=True, services=["web"])
        assert set(subscription.snapshot) == {"web"}
        await wait_until(host, running("web", "db"))
        await host.restart("web")
        await host.restart("db")
        seen: list[ev.Event] = []
        with anyio.fail_after(10):
            async for batch in subscription:
                seen.extend(batch)
                if any(isinstance(e, ev.Output) and "hello" in (e.lines or ()) for e in batch):
                    break
        assert {getattr(e, "service", "web") for e in seen} == {"web"}
        assert not any(isinstance(e, ev.StatusChanged | ev.Snapshot) for e in seen)
        await remote.close()


class Scripted:
    """A server that says what the test tells it, when it tells it: one client, by hand."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.connected.set()

    async def expect(self, op: str) -> dict[str, Any]:
        assert self.reader is not None
        message = protocol.decode(await asyncio.wait_for(self.reader.readline(), 10))
        assert message["op"] == op, message
        return message

    def send(self, message: dict[str, Any]) -> None:
        assert self.writer is not None
        self.writer.write(protocol.encode(message))

    async def connect(
        self, path: Path, mirrored: list[ServiceView] | None
    ) -> tuple[RemoteHost, int | None]:
        """A client of this peer, greeted; its mirror's subscription answered with
        `mirrored` (None: a client without a mirror). Returns it and that stream's id."""
        connecting = asyncio.create_task(RemoteHost.connect(path, mirror=mirrored is not None))
        await asyncio.wait_for(self.connected.wait(), 10)
        await self.expect("hello")
        self.send(protocol.ok(0, {"version": 1, "pid": 1, "manifest": "/m/services.toml"}))
        own = None
        if mirrored is not None:
            own = (await self.expect("subscribe"))["id"]
            self.send(protocol.ok(own, {"after": 1, "snapshot": [v.to_json() for v in mirrored]}))
        return await connecting, own


def view(name: str, state: ServiceState, pid: int | None = None) -> ServiceView:
    return ServiceView(name=name, state=state, spec=SpecView(name=name, command="x"), pid=pid)


async def test_an_event_waits_for_its_status_line_before_a_front_end_sees_it(
    folder: Path,
) -> None:
    peer = Scripted()
    server = await asyncio.start_unix_server(peer.serve, folder / "s.sock")
    remote, own = await peer.connect(folder / "s.sock", [view("web", S.STOPPED)])
    assert own is not None
    subscription = await remote.subscribe()
    started = ev.StateChanged(seq=2, ts=0.0, service="web", old=S.STOPPED, state=S.RUNNING, pid=7)
    peer.send(protocol.stream(own, started.to_json()))
    with anyio.move_on_after(mirror.HOLD / 2) as waited:
        await anext(aiter(subscription))
    assert waited.cancelled_caught, "the event came before the view it changed"
    assert remote.snapshot()["web"].state is S.STOPPED
    status = ev.StatusChanged(seq=2, ts=0.0, services=(view("web", S.RUNNING, 7),))
    peer.send(protocol.stream(own, status.to_json()))
    with anyio.fail_after(10):
        batch = await anext(aiter(subscription))
    assert [e.to_json() for e in batch] == [started.to_json()]
    assert remote.snapshot()["web"].state is S.RUNNING and remote.snapshot()["web"].pid == 7
    # A view as of an older seq (another stream's, behind) never replaces a newer one.
    subscribing = asyncio.create_task(remote.subscribe(services=["web"]))
    other = (await peer.expect("subscribe"))["id"]
    peer.send(protocol.ok(other, {"after": 1, "snapshot": [view("web", S.STOPPED).to_json()]}))
    behind = await subscribing
    assert behind.snapshot["web"].state is S.STOPPED and behind.after == 1
    assert remote.snapshot()["web"].state is S.RUNNING
    peer.send(protocol.stream(own, ev.HostStopping(seq=3, ts=0.0, reason="x").to_json()))
    with anyio.fail_after(10):
        await anext(aiter(subscription))
    assert remote.stopping
    await remote.close()
    server.close()


async def test_every_event_the_server_sends_views_after_waits_for_them(folder: Path) -> None:
    """Regression: the client held only a hand-kept list of kinds for their status line, and
    a `hook` (or `group_restart`, `scaled`) batch reached front ends before its views."""
    peer = Scripted()
    server = await asyncio.start_unix_server(peer.serve, folder / "s.sock")
    remote, own = await peer.connect(folder / "s.sock", [view("web", S.RUNNING, 7)])
    assert own is not None
    subscription = await remote.subscribe()
    hook = ev.HookRan(seq=2, ts=0.0, service="web", hook="exited", command="true")
    assert ev.changed_services(hook) == ("web",)  # the server follows it by web's view
    peer.send(protocol.stream(own, hook.to_json()))
    with anyio.move_on_after(mirror.HOLD / 2) as waited:
        await anext(aiter(subscription))
    assert waited.cancelled_caught, "the event came before the view it changed"
    status = ev.StatusChanged(seq=2, ts=0.0, services=(view("web", S.RUNNING, 8),))
    peer.send(protocol.stream(own, status.to_json()))
    with anyio.fail_after(10):
        batch = await anext(aiter(subscription))
    assert [e.to_json() for e in batch] == [hook.to_json()]
    assert remote.snapshot()["web"].pid == 8
    await remote.close()
    server.close()


async def test_the_mirror_keeps_up_with_a_real_host_read_in_tiny_pieces(
    make_manifest: Callable[..., Manifest], folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tiny reads cut the stream anywhere, between a batch and the status line after it.
    monkeypatch.setattr(client, "READ_SIZE", 7)
    async with serving(make_manifest(web="exec sleep 30"), folder / "s.sock") as (host, _):
        await wait_until(host, running("web"))
        remote = await RemoteHost.connect(folder / "s.sock")
        subscription = await remote.subscribe()
        restarts = 8
        async with anyio.create_task_group() as tg:

            async def restart() -> None:
                for _ in range(restarts):
                    await host.restart("web")

            tg.start_soon(restart)
            with anyio.fail_after(20):
                async for batch in subscription:
                    for event in batch:
                        if isinstance(event, ev.StateChanged):
                            seen = remote.snapshot()["web"]
                            assert seen.restarts >= event.restarts, (event, seen)
                    last = [e for e in batch if isinstance(e, ev.StateChanged)][-1:]
                    if last and last[0].state is S.RUNNING and last[0].restarts == restarts:
                        assert remote.snapshot()["web"].state is S.RUNNING
                        break
        await remote.close()


async def test_a_subscription_nobody_reads_drops_and_says_missed_never_holding_answers(
    make_manifest: Callable[..., Manifest], folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mirror, "QUEUE_MAX", 4096)
    noisy = "for i in $(seq 3000); do echo line $i; done; exec sleep 30"
    manifest = make_manifest(noisy=(noisy, {"autostart": False}))
    async with serving(manifest, folder / "s.sock") as (host, _):
        remote = await RemoteHost.connect(folder / "s.sock")
        unread = await remote.subscribe(lines=True)
        await remote.start("noisy")
        with anyio.fail_after(10):
            while host.store.last_seq < 3000:
                await remote.views()  # answered while the subscription is not read
        await mirrored(remote, lambda s: s["noisy"].state is S.RUNNING)
        batches = aiter(unread)
        first = await anext(batches)
        with anyio.fail_after(10):
            while not any(isinstance(e, ev.Missed) for e in first):
                first = await anext(batches)
        missed = next(e for e in first if isinstance(e, ev.Missed))
        assert missed.count > 0
        await remote.close()


async def test_a_lost_connection_ends_subscriptions_and_fails_requests(
    make_manifest: Callable[..., Manifest], folder: Path, token: str
) -> None:
    host = Host(make_manifest(web="exec sleep 30"))
    async with host:
        server = ControlServer(host, SocketPath(path=folder / "s.sock"))
        async with server:
            remote = await RemoteHost.connect(folder / "s.sock")
            subscription = await remote.subscribe()
        # The server is gone, the host is not: no host_stopped came, the stream just ended.
        with anyio.fail_after(10):
            async for batch in subscription:
                assert not any(isinstance(e, ev.HostStopped) for e in batch)
        assert remote.lost is not None
        with pytest.raises(ConnectionLost):
            await remote.restart("web")
        assert host.snapshot()["web"].state in (S.STARTING, S.RUNNING)
        await remote.close()
    assert not list(tagged_pids(token))


async def test_shutdown_returns_once_the_host_stopped(
    make_manifest: Callable[..., Manifest], folder: Path, token: str
) -> None:
    async with serving(make_manifest(web="exec sleep 30"), folder / "s.sock") as (host, _):
        await wait_until(host, running("web"))
        remote = await RemoteHost.connect(folder / "s.sock")
        subscription = await remote.subscribe()
        await remote.shutdown("asked by a test")
        assert remote.stopping
        assert not list(tagged_pids(token))
        kinds: list[str] = []
        with anyio.fail_after(10):
            async for batch in subscription:
                kinds.extend(e.kind for e in batch)
                if "host_stopped" in kinds:
                    break
        assert kinds[0] == "host_stopping" and kinds[-1] == "host_stopped"
        await remote.close()


async def test_an_answer_over_a_mebibyte_is_read(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    """Regression: the client held answers to the 1 MiB limit of requests, and hung up."""
    line = "y" * 200
    big = f"for i in $(seq 10000); do echo {line}; done; exec sleep 30"
    async with serving(make_manifest(big=(big, {"autostart": False})), folder / "s.sock") as (
        host,
        _,
    ):
        remote = await RemoteHost.connect(folder / "s.sock")
        subscription = await remote.subscribe(lines=True)
        await remote.start("big")
        with anyio.fail_after(10):
            while host.store.last_seq < 10_000:
                await anext(aiter(subscription))
        batches = await remote.logs("big")
        assert sum(len(b.lines) for b in batches) == 10_000
        assert {text for b in batches for text in b.lines} == {line}
        await remote.close()


async def test_a_watch_toggled_by_one_client_shows_in_another_clients_mirror(
    make_manifest: Callable[..., Manifest], folder: Path, tmp_path: Path
) -> None:
    """Regression: toggling a watch emitted no event, so no other client's view changed."""
    (tmp_path / "src").mkdir()
    manifest = make_manifest(web=("exec sleep 30", {"watch": ("src",)}), db="exec sleep 31")
    async with serving(manifest, folder / "s.sock") as (host, _):
        await wait_until(host, running("web", "db"))
        one = await RemoteHost.connect(folder / "s.sock")
        other = await RemoteHost.connect(folder / "s.sock")
        assert other.snapshot()["web"].watching is True
        assert await one.toggle_watch("web") is False
        await mirrored(other, lambda s: s["web"].watching is False)
        await one.close()
        await other.close()


async def test_a_reload_keeps_the_mirror_in_the_manifests_order(
    tmp_path: Path, folder: Path, token: str
) -> None:
    """Regression: services a reload added went to the end of a client's mirror."""
    from tuisup.manifest import load_manifest

    path = tmp_path / "services.toml"
    table = '[services.{0}]\ncommand = "sleep 60"\nenv = {{ TUISUP_TEST_TOKEN = "{1}" }}\n'
    path.write_text(table.format("a", token) + table.format("c", token))
    async with serving(load_manifest(path), folder / "s.sock") as (host, _):
        await wait_until(host, running("a", "c"))
        remote = await RemoteHost.connect(folder / "s.sock")
        path.write_text("".join(table.format(n, token) for n in ("a", "b", "c")))
        assert await host.reload()
        await mirrored(remote, lambda s: list(s) == ["a", "b", "c"])
        await remote.close()


async def test_tables_name_each_replicated_service_and_its_count_a_table_at_zero_too(
    tmp_path: Path, folder: Path, token: str
) -> None:
    text = """
        [services.web]
        command = "sleep 30"
        env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

        [services.worker]
        command = "sleep 31"
        replicas = 2
        env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

        [services.spare]
        command = "sleep 32"
        replicas = 0

        [groups.g]
        services = ["web", "spare"]
    """
    manifest = load_manifest(write_manifest(tmp_path, text, token))
    async with serving(manifest, folder / "s.sock") as (host, _):
        remote = await RemoteHost.connect(folder / "s.sock")
        both = {"worker": TableView(replicas=2), "spare": TableView(replicas=0, group="g")}
        assert await remote.tables() == await host.tables() == both
        await remote.scale("worker", 0)
        assert (await remote.tables())["worker"] == TableView(replicas=0)
        assert "worker.0" not in host.snapshot()
        await remote.close()
