"""Hostile or broken clients never hurt the host: malformed, oversized and silent clients,
readers that fall behind or stop, clients that leave mid-stream, and secrets never sent."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import wait_event, wait_until
from tests.control.raw import Closed, Raw, open_fds, serving, short_folder
from tuisup.control.paths import SocketPath
from tuisup.control.protocol import MAX_LINE
from tuisup.control.server import ControlServer, Limits
from tuisup.engine import Host, ServiceState
from tuisup.engine.events import Event, Output
from tuisup.spec import ExecutorKind, HostSettings, Manifest, RestartPolicy, ServiceSpec

S = ServiceState


@pytest.fixture
def folder() -> Iterator[Path]:
    with short_folder() as path:
        yield path


async def test_malformed_lines_are_answered_and_too_many_close_the_connection(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    async with serving(make_manifest(web="exec sleep 30"), folder / "s.sock"):
        raw = await Raw.connect(folder / "s.sock")
        answer = await raw.ask(b"{not json\n", None)
        assert answer["id"] is None and answer["error"]["code"] == "bad_request"
        assert answer["error"]["message"].startswith("not JSON")
        answer = await raw.ask(b"[1, 2]\n", None)
        assert answer["error"]["message"] == "not a JSON object"
        answer = await raw.ask(b'{"id": "one", "op": "snapshot"}\n', None)
        assert answer["error"]["message"] == "id must be an integer"
        assert (await raw.result("snapshot"))["services"][0]["service"] == "web"
        for _ in range(6):
            await raw.ask(b"\xff\xfe\n", None)
        await raw.send(b"nope\n")  # the tenth
        last = await raw.line()
        assert last["error"]["code"] == "bad_request"
        await raw.closed()


async def test_a_line_over_1_mib_is_refused_and_closes_the_connection(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    async with serving(make_manifest(web="exec sleep 30"), folder / "s.sock"):
        fits = await Raw.connect(folder / "s.sock")
        head = b'{"id": 1, "op": "snapshot", "pad": "'
        exact = head + b"x" * (MAX_LINE - len(head) - 2) + b'"}'
        assert len(exact) == MAX_LINE
        assert (await fits.ask(exact + b"\n", 1))["ok"]  # 1 MiB exactly is a line
        raw = await Raw.connect(folder / "s.sock")

        async def flood() -> None:
            try:
                await raw.send(exact + b"xx" * 50_000 + b"\n")
            except (anyio.BrokenResourceError, OSError):
                pass  # it stopped reading us: that is the point

        async with anyio.create_task_group() as tg:
            tg.start_soon(flood)
            answer = await raw.line()
        assert answer == {
            "id": None,
            "ok": False,
            "error": {"code": "bad_request", "message": "request over 1 MiB"},
        }
        await raw.closed()
        assert (await fits.result("snapshot"))["services"][0]["service"] == "web"


async def test_a_client_that_says_nothing_is_closed(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    limits = Limits(hello_within=0.3)
    async with serving(make_manifest(web="exec sleep 30"), folder / "s.sock", limits):
        raw = await Raw.connect(folder / "s.sock", hello=False)
        with anyio.fail_after(3):
            answer = await raw.line()
            await raw.closed()
        assert answer["error"] == {"code": "bad_request", "message": "no hello within 0.3 s"}


async def test_two_clients_at_once(make_manifest: Callable[..., Manifest], folder: Path) -> None:
    manifest = make_manifest(web="exec sleep 30", db="exec sleep 31")
    async with serving(manifest, folder / "s.sock") as (host, _):
        await wait_until(host, lambda s: all(v.state is S.RUNNING for v in s.values()))
        one, two = await Raw.connect(folder / "s.sock"), await Raw.connect(folder / "s.sock")
        await one.result("subscribe")
        await two.result("subscribe")
        await one.send({"id": 2, "op": "restart", "args": {"name": "web"}})
        await two.send({"id": 2, "op": "restart", "args": {"name": "db"}})
        assert (await one.answer(2))["ok"] and (await two.answer(2))["ok"]
        for raw in (one, two):
            seen: set[str] = set()

            def both(event: dict[str, Any], seen: set[str] = seen) -> bool:
                if event["event"] == "state" and event["state"] == "running":
                    seen.add(event["service"])
                return seen == {"web", "db"}

            await raw.events(1, both)
            await raw.aclose()


FLOOD = """
import sys, time
lines, rate = int(sys.argv[1]), 50_000
text = "flood " * 10
start = time.monotonic()
for i in range(lines):
    sys.stdout.write(f"{text}{i}\\n")
    if i % 500 == 499:
        sys.stdout.flush()
        ahead = (i + 1) / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
sys.stdout.flush()
"""
"""Writes `lines` lines at 50,000 a second (the issue's figure), in bursts of 500."""


def flooding(folder: Path, lines: int) -> tuple[str, dict[str, Any]]:
    script = folder / "flood.py"
    script.write_text(FLOOD)
    return f"{sys.executable} {script} {lines}; exec sleep 30", {"autostart": False}


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@asynccontextmanager
async def peak_rss() -> AsyncIterator[list[int]]:
    """The highest RSS of this process (the host's) while the block runs, every 10 ms."""
    peak = [rss()]

    async def sample() -> None:
        while True:
            peak[0] = max(peak[0], rss())
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(sample)
        yield peak
        tg.cancel_scope.cancel()


async def until_flooded(host: Host, lines: int) -> None:
    """Wait until the host has kept the flood's `lines` lines."""

    def last(event: Event) -> bool:
        return isinstance(event, Output) and event.first_line + event.count > lines

    await wait_event(host, last, after=0, timeout=60)


async def test_a_reader_that_falls_behind_is_told_what_it_missed(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    """While a service floods, a client that does not read loses events, never silently:
    when it reads again it gets `missed` with the count, a `snapshot`, and goes on. What
    waits for it stays bounded; the other client and a restart are not held up."""
    lines = 100_000
    manifest = make_manifest(flood=flooding(folder, lines), other="exec sleep 31")
    limits = Limits(outbox=64 * 1024, stall=60.0)
    async with serving(manifest, folder / "s.sock", limits) as (host, _):
        await wait_until(host, lambda s: s["other"].state is S.RUNNING)
        slow, quick = await Raw.connect(folder / "s.sock"), await Raw.connect(folder / "s.sock")
        quick.keep = False
        after = (await slow.result("subscribe", lines=True))["after"]
        await quick.result("subscribe", lines=True)
        async with quick.reading(), peak_rss() as peak:
            before = peak[0]
            await quick.result("start", name="flood")
            with anyio.fail_after(5):
                await quick.result("restart", name="other")
            await until_flooded(host, lines)
            await quick.result("restart", name="other")
        # The flood is 8 MB of stream lines: kept for the slow client, 4 MB more showed.
        assert peak[0] - before < 2 << 20, peak[0] - before
        last = host.bus.last_seq  # slow reads up to here: every event, or a `missed` for it
        expected, missed = after + 1, 0
        while expected <= last:
            event = (await slow.line())["stream"]
            if event["event"] == "missed":
                assert event["seq"] == expected, (event, expected)
                expected += event["count"]
                missed += event["count"]
                assert (await slow.line())["stream"]["event"] == "snapshot"
            else:
                assert event["seq"] == expected, (event, expected)
                expected += 1
        assert missed > 0
        await slow.aclose()
        await quick.aclose()


async def test_a_reader_that_stops_reading_is_cut_off(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    lines = 100_000
    manifest = make_manifest(flood=flooding(folder, lines), other="exec sleep 31")
    limits = Limits(outbox=64 * 1024, stall=0.5)
    async with serving(manifest, folder / "s.sock", limits) as (host, server):
        await wait_until(host, lambda s: s["other"].state is S.RUNNING)
        stuck, quick = await Raw.connect(folder / "s.sock"), await Raw.connect(folder / "s.sock")
        quick.keep = False
        await stuck.result("subscribe", lines=True)
        await quick.result("subscribe", lines=True)
        async with quick.reading():
            await quick.result("start", name="flood")
            with anyio.fail_after(10):
                while server.clients > 1:
                    await anyio.sleep(0.05)
            with anyio.fail_after(5):
                await quick.result("restart", name="other")
            await until_flooded(host, lines)
        assert quick.counted > 0
        with pytest.raises(Closed):
            await stuck.events(1, lambda e: False)
        await quick.aclose()


async def test_a_client_that_leaves_mid_stream_leaves_no_task_and_no_descriptor(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    manifest = make_manifest(tick="while true; do echo tick; sleep 0.02; done")
    async with serving(manifest, folder / "s.sock") as (host, server):
        await wait_event(host, lambda e: isinstance(e, Output), after=0)  # its log file is open
        tasks, fds = asyncio.all_tasks(), open_fds()
        for _ in range(5):
            raw = await Raw.connect(folder / "s.sock")
            await raw.result("subscribe", lines=True, views=True)
            await raw.send({"id": 7, "op": "subscribe", "args": {"services": ["tick"]}})
            await raw.events(1, lambda e: e["event"] == "output")
            await raw.aclose()
            with anyio.fail_after(10):
                while server.clients:
                    await anyio.sleep(0.01)
        # Other descriptors of the host come and go (its service's pipes, pidfds): none
        # is left that was not there before, and no more sockets than before are open.
        assert describe(open_fds() - fds) == {}
        assert sockets(open_fds()) == sockets(fds)
        # The host's feed of events for its streams ends with the last of them, at the
        # loop's next turn or so.
        with anyio.fail_after(5):
            while asyncio.all_tasks() - tasks:
                await anyio.sleep(0.01)


def sockets(fds: set[int]) -> int:
    return sum(kind.startswith("socket:") for kind in describe(fds).values())


def describe(fds: set[int]) -> dict[int, str]:
    found = {}
    for fd in fds:
        try:
            found[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            found[fd] = "closed"
    return found


async def test_secret_values_never_leave_the_host(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    env = {"API_TOKEN": "hunter2", "DB_PASSWORD": "hunter2", "PORT": "8000"}
    manifest = make_manifest(web=("echo up; exec sleep 30", {"env": env}))
    async with serving(manifest, folder / "s.sock") as (host, _):
        await wait_until(host, lambda s: s["web"].state is S.RUNNING)
        raw = await Raw.connect(folder / "s.sock")
        await raw.result("subscribe", lines=True, views=True)
        snapshot = await raw.result("snapshot")
        for op in ("restart", "toggle_watch", "stop", "start"):
            await raw.result(op, name="web")
        await raw.result("affected", verb="restart", name="web")
        await raw.result("logs")
        await raw.result("processes")
        await raw.events(1, lambda e: e["event"] == "status" and e["services"][0]["pid"])
        await raw.result("reload")
        await raw.aclose()
    assert b"hunter2" not in raw.received
    spec_env = snapshot["services"][0]["spec"]["env"]
    assert spec_env["API_TOKEN"] == spec_env["DB_PASSWORD"] == "••••••••"
    assert spec_env["PORT"] == "8000"
    assert json.dumps(snapshot).count("hunter2") == 0


async def test_text_that_is_not_valid_unicode_travels_escaped(tmp_path: Path, folder: Path) -> None:
    r"""Regression: a service failed with a lone surrogate in its error (`"\udcff"`, as a
    file name that is not UTF-8 decodes to; so do watched paths). Encoding the stream line
    and the answers that carry it raised, and that took the server down with the host."""
    module = f"svc_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{module}.py").write_text(
        "async def run(ctx):\n    raise ValueError('no such file: \\udcff.txt')\n"
    )
    spec = ServiceSpec(
        name="odd",
        argv=(),
        command=f"{module}:run",
        target=f"{module}:run",
        executor=ExecutorKind.ASYNC,
        cwd=tmp_path,
        autostart=False,
        restart=RestartPolicy.NEVER,
    )
    manifest = Manifest(
        path=tmp_path / "services.toml", settings=HostSettings(log_dir=None), services={"odd": spec}
    )
    async with serving(manifest, folder / "s.sock") as (host, _):
        raw = await Raw.connect(folder / "s.sock")
        await raw.result("subscribe", views=True)
        await raw.result("start", name="odd")
        said = await raw.events(1, lambda e: e["event"] == "state" and e["state"] == "exited")
        assert said[-1]["error"] == "ValueError: no such file: \udcff.txt"
        view = (await raw.result("snapshot"))["services"][0]
        assert view["history"][0]["error"] == "ValueError: no such file: \udcff.txt"
        await raw.aclose()


HOLDER = """
import socket, sys
sys.stdin.readline()
held = []
for _ in range(int(sys.argv[2])):
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(sys.argv[1])
    held.append(client)
print("holding", flush=True)
sys.stdin.readline()
"""


async def test_running_out_of_descriptors_does_not_stop_the_server_for_good(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    """Regression: a client that opened connections until the host ran out of descriptors
    made accept fail once (EMFILE), and the server stopped accepting for good."""
    async with serving(make_manifest(web="exec sleep 30"), folder / "s.sock") as (_, server):
        holder = await anyio.open_process(
            [sys.executable, "-c", HOLDER, str(folder / "s.sock"), "40"]
        )
        assert holder.stdout is not None and holder.stdin is not None
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        # Lowered after the holder started: it inherits the limit, the host runs out.
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(open_fds()) + 10, hard))
        try:
            await holder.stdin.send(b"connect\n")
            with anyio.fail_after(10):
                assert b"holding" in await holder.stdout.receive()
                while server.clients < 5:  # it took what it could, then accept failed
                    await anyio.sleep(0.02)
                await anyio.sleep(0.3)  # and failed again, and again
            await holder.stdin.send(b"\n")
            await holder.wait()
            await holder.aclose()
            with anyio.fail_after(10):
                while server.clients:
                    await anyio.sleep(0.02)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        raw = await Raw.connect(folder / "s.sock")
        assert (await raw.result("snapshot"))["services"][0]["service"] == "web"
        await raw.aclose()


class SlowToSubscribe:
    """A host whose `subscribe` takes a moment, as one behind a socket does (HostAPI
    allows it: the server may serve a RemoteHost)."""

    def __init__(self, host: Host) -> None:
        self._host = host

    def __getattr__(self, name: str) -> Any:
        return getattr(self._host, name)

    async def subscribe(self, *, lines: bool = False) -> Any:
        await anyio.sleep(0.05)
        return await self._host.subscribe(lines=lines)


async def test_a_client_that_stops_sending_right_after_subscribing_is_let_go(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    """Regression: a `subscribe` answered after the client had closed its sending side
    (the end of its requests) opened a stream that nothing ended: the connection, its
    task and its socket stayed for as long as the host ran. Now that stream ends at once:
    the client gets its answer, then the end of the connection."""
    async with Host(make_manifest(web="exec sleep 30")) as host:
        server = ControlServer(SlowToSubscribe(host), SocketPath(path=folder / "s.sock"))  # type: ignore[arg-type]
        server.bind()
        async with server:
            raw = await Raw.connect(folder / "s.sock")
            await raw.send({"id": 1, "op": "subscribe"})
            await raw.stream.send_eof()
            assert (await raw.answer(1))["ok"]
            await raw.closed(timeout=5)
            await raw.aclose()
            with anyio.fail_after(5):
                while server.clients:
                    await anyio.sleep(0.01)


FOLLOWER = """
import selectors, socket, sys
selector = selectors.DefaultSelector()
for _ in range(5):
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(sys.argv[1])
    client.sendall(b'{"id": 0, "op": "hello", "version": 1}\\n'
                   b'{"id": 1, "op": "subscribe", "args": {"lines": true}}\\n')
    client.setblocking(False)
    selector.register(client, selectors.EVENT_READ)
print("following", flush=True)
while True:
    for key, _ in selector.select():
        try:
            key.fileobj.recv(1 << 16)
        except BlockingIOError:
            pass
"""


async def test_clients_killed_while_following_leave_no_error_on_the_hosts_stderr(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    """Regression: a client killed while it followed a busy service made asyncio print
    `Exception in callback Future.set_result(None)` / `InvalidStateError` on the host's
    stderr (anyio's UNIX stream left a callback for the read that was cancelled when its
    peer went): most runs of this test saw one or more."""
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
    manifest = make_manifest(flood=flooding(folder, 10_000_000), other="exec sleep 31")
    async with serving(manifest, folder / "s.sock") as (host, server):
        await host.start("flood")
        for _ in range(8):
            follower = await anyio.open_process(
                [sys.executable, "-c", FOLLOWER, str(folder / "s.sock")]
            )
            await anyio.sleep(0.3)  # it follows a few batches of the flood
            follower.kill()
            await follower.wait()
            await follower.aclose()
            await anyio.sleep(0.1)
        with anyio.fail_after(10):
            while server.clients:
                await anyio.sleep(0.01)
        await host.stop("flood")
    assert errors == []


async def test_a_reader_behind_when_the_host_stops_still_hears_it_stopped(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    """Regression: `host_stopped` was dropped like any event for a full outbox, and a
    follower behind ended with "the host closed the connection" and exit 1."""
    others = {f"idle{i}": "exec sleep 60" for i in range(20)}  # the stop says much
    manifest = make_manifest(flood="exec yes 'a line that never ends'", **others)
    limits = Limits(outbox=1024, stall=60.0)
    async with serving(manifest, folder / "s.sock", limits) as (host, server):
        slow = await Raw.connect(folder / "s.sock")
        await slow.result("subscribe", lines=True)
        await until_flooded(host, 200_000)  # far more than it can hold: it is behind
        async with anyio.create_task_group() as tg:
            tg.start_soon(host.shutdown)  # while the flood still comes
            last: dict[str, object] = {}
            with anyio.fail_after(20):
                while last.get("event") != "host_stopped":
                    last = (await slow.line())["stream"]
        await slow.aclose()
