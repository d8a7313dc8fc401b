"""Python services observe and move one another (`ctx.events`, `ctx.restart`, ...).

Every executor, through a real host and its real control socket (the process kinds reach
the host through `TUISUP_SOCKET`): what a service saw is what it printed to its own log.
"""

from __future__ import annotations

import signal
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import Tuisup, wait_until
from tests.control.raw import serving, short_folder
from tuisup.engine import Host, ServiceState
from tuisup.spec import Condition, ExecutorKind, HostSettings, Manifest, ServiceSpec

S = ServiceState
KINDS = [ExecutorKind.PROCESS, ExecutorKind.THREAD, ExecutorKind.ASYNC, ExecutorKind.ASYNC_PROCESS]
ASYNC_KINDS = (ExecutorKind.ASYNC, ExecutorKind.ASYNC_PROCESS)

SOURCE = """
import time

def describe(ev):
    if ev.kind == "snapshot":
        return "snapshot " + " ".join(f"{v.name}={v.state}" for v in ev.services)
    if ev.kind == "missed":
        return f"missed {ev.count}"
    if ev.kind == "output":
        return f"output {ev.service} {' '.join(ev.lines or ())}"
    return f"{ev.kind} {getattr(ev, 'service', '-')} {getattr(ev, 'state', '')}"

def watch(ctx):
    for ev in ctx.events(services=["db"], kinds=["state"]):
        print("saw", describe(ev), flush=True)
    print("feed ended", flush=True)

async def awatch(ctx):
    async for ev in ctx.events(services=["db"], kinds=["state"]):
        print("saw", describe(ev), flush=True)
    print("feed ended", flush=True)

def act(ctx):
    ctx.restart("db")
    print("restarted db", flush=True)
    for verb in ("restart", "stop", "kill", "start"):
        try:
            getattr(ctx, verb)(ctx.name)
        except Exception as exc:
            print(f"refused {verb}: {type(exc).__name__}: {exc}", flush=True)
    try:
        ctx.stop("db")
    except Exception as exc:
        print(f"refused stop db: {type(exc).__name__}: {exc}", flush=True)
    try:
        ctx.restart("nosuch")
    except Exception as exc:
        print(f"refused nosuch: {type(exc).__name__}", flush=True)
    print("states", ctx.snapshot()["db"].state, flush=True)
    ctx.token.wait()

async def aact(ctx):
    await ctx.restart_async("db")
    print("restarted db", flush=True)
    for verb in ("restart", "stop", "kill", "start"):
        try:
            await getattr(ctx, verb + "_async")(ctx.name)
        except Exception as exc:
            print(f"refused {verb}: {type(exc).__name__}: {exc}", flush=True)
    try:
        await ctx.stop_async("db")
    except Exception as exc:
        print(f"refused stop db: {type(exc).__name__}: {exc}", flush=True)
    try:
        await ctx.restart_async("nosuch")
    except Exception as exc:
        print(f"refused nosuch: {type(exc).__name__}", flush=True)
    print("states", (await ctx.snapshot_async())["db"].state, flush=True)
    await ctx.token.wait_async()

def lag(ctx):
    feed = ctx.events(services=["chatty"], kinds=["output", "state"], buffer=5)
    first = next(feed)
    print("saw", describe(first), flush=True)
    while not (ctx.cwd / "read-now").exists():
        time.sleep(0.01)
    for ev in feed:
        print("saw", describe(ev), flush=True)

async def alag(ctx):
    import asyncio
    feed = ctx.events(services=["chatty"], kinds=["output", "state"], buffer=5)
    print("saw", describe(await feed.__anext__()), flush=True)
    while not (ctx.cwd / "read-now").exists():
        await asyncio.sleep(0.01)
    async for ev in feed:
        print("saw", describe(ev), flush=True)

async def blocking_in_a_coroutine(ctx):
    try:
        ctx.snapshot()
    except RuntimeError as exc:
        print("refused:", exc, flush=True)
    try:
        ctx.events(kinds=["stat"])
    except ValueError as exc:
        print("refused:", exc, flush=True)
    try:
        async for ev in ctx.events(services=["nosuch"]):
            pass
    except Exception as exc:
        print("refused:", type(exc).__name__, exc, flush=True)
    await ctx.token.wait_async()

FEEDS = []

def leave(ctx):
    feed = ctx.events()
    next(feed)
    FEEDS.append(feed)
    print("left", flush=True)

def alone(ctx):
    try:
        for ev in ctx.events():
            pass
    except Exception as exc:
        print("refused:", type(exc).__name__, exc, flush=True)
    ctx.token.wait()
"""


def form(kind: ExecutorKind, name: str) -> str:
    return f"a{name}" if kind in ASYNC_KINDS else name


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., Manifest]:
    """make(name=(attribute, executor, {options}) or "shell command", ...)."""
    module = f"obs_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(SOURCE))

    def build(**services: Any) -> Manifest:
        specs = {}
        for name, value in services.items():
            if isinstance(value, str):
                argv = ("/bin/sh", "-c", value)
                specs[name] = ServiceSpec(name=name, argv=argv, command=value, cwd=tmp_path)
                continue
            attribute, executor, *rest = value
            specs[name] = ServiceSpec(
                name=name,
                argv=(),
                command=f"{module}:{attribute}",
                target=f"{module}:{attribute}",
                executor=executor,
                cwd=tmp_path,
                **(rest[0] if rest else {}),
            )
        settings = HostSettings(log_dir=None, shutdown_timeout=10.0)
        return Manifest(path=tmp_path / "services.toml", settings=settings, services=specs)

    return build


@asynccontextmanager
async def hosting(manifest: Manifest) -> AsyncIterator[Host]:
    """A host serving its control socket, as `tuisup` runs one."""
    with short_folder() as folder:
        async with serving(manifest, folder / "s.sock") as (host, _):
            yield host


def lines(host: Host, name: str) -> list[str]:
    return [line for b in host.store.since(name, 0) for line in b.lines]


async def wait_line(host: Host, name: str, text: str, timeout: float = 15.0) -> list[str]:
    """Wait until a line of `name`'s log contains `text`; return the log."""
    try:
        await wait_until(host, lambda _: any(text in ln for ln in lines(host, name)), timeout)
    except TimeoutError:
        raise AssertionError(f"{text!r} not in {name}'s log: {lines(host, name)}") from None
    return lines(host, name)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_subscriber_sees_a_snapshot_first_then_events_and_ends_when_stopped(
    make: Callable[..., Manifest], kind: ExecutorKind
) -> None:
    manifest = make(
        db="exec sleep 60",
        other="exec sleep 60",
        watcher=(form(kind, "watch"), kind, {"stop_timeout": 10.0}),
    )
    async with hosting(manifest) as host:
        await wait_until(host, lambda s: s["db"].state is S.RUNNING)
        first = (await wait_line(host, "watcher", "saw snapshot"))[0]
        assert first == "saw snapshot db=running"  # db only, and already up: never missed
        await host.restart("db")
        await wait_line(host, "watcher", "saw state db running")
        await host.restart("other")  # not selected
        await host.stop("db")
        await wait_until(host, lambda _: len(lines(host, "watcher")) >= 7)
        assert lines(host, "watcher") == [
            "saw snapshot db=running",
            "saw state db stopping",
            "saw state db stopped",
            "saw state db starting",
            "saw state db running",
            "saw state db stopping",
            "saw state db stopped",
        ]
        began = time.monotonic()
        await host.stop("watcher")
        took = time.monotonic() - began
        assert lines(host, "watcher")[-1] == "feed ended"  # its loop ended: it was not killed
        assert took < 5.0  # the token ended the feed at once, not stop_timeout's kill


@pytest.mark.parametrize("kind", KINDS)
async def test_a_service_restarts_another_and_may_not_move_itself(
    make: Callable[..., Manifest], kind: ExecutorKind
) -> None:
    manifest = make(
        db="exec sleep 60",
        actor=(form(kind, "act"), kind, {"depends_on": {"db": Condition.STARTED}}),
    )
    async with hosting(manifest) as host:
        snap = await wait_until(host, lambda s: s["db"].state is S.RUNNING)
        pid = snap["db"].pid
        seen = await wait_line(host, "actor", "states ")
        assert host.snapshot()["db"].pid != pid  # restarted by the actor
        assert "restarted db" in seen
        for verb in ("restart", "stop", "kill", "start"):
            assert f"refused {verb}: SelfControl: actor cannot {verb} itself" in "\n".join(seen)
        assert (
            "refused stop db: SelfControl: stopping db would stop actor itself first "
            "(it depends on it)" in seen
        )
        assert "refused nosuch: UnknownService" in seen
        assert "states running" in seen
        assert host.snapshot()["actor"].state is S.RUNNING
        assert host.snapshot()["actor"].restarts == 0


@pytest.mark.parametrize(
    "kind", [ExecutorKind.THREAD, ExecutorKind.ASYNC, ExecutorKind.ASYNC_PROCESS]
)
async def test_a_subscriber_behind_gets_missed_with_the_count_then_a_snapshot(
    make: Callable[..., Manifest], kind: ExecutorKind, tmp_path: Path
) -> None:
    """It holds at most `buffer` events; the host and the other services never wait for it."""
    chatty = "for i in $(seq 1 200); do echo line $i; sleep 0.002; done; exec sleep 60"
    manifest = make(laggard=(form(kind, "lag"), kind), chatty=chatty)
    async with hosting(manifest) as host:
        await wait_line(host, "laggard", "saw snapshot")
        await wait_until(host, lambda _: "line 200" in lines(host, "chatty"), timeout=20)
        (tmp_path / "read-now").touch()
        await wait_line(host, "laggard", "saw missed")
        await host.stop("chatty")
        await wait_until(host, lambda _: knows_stopped(lines(host, "laggard")), timeout=15)
        seen = lines(host, "laggard")
    assert seen[0].startswith("saw snapshot chatty=")
    missed = [i for i, line in enumerate(seen) if line.startswith("saw missed")]
    assert missed, seen
    for i in missed:  # each time: how many were lost, then where things stand
        assert int(seen[i].split()[-1]) > 0
        assert seen[i + 1].startswith("saw snapshot chatty=")
    outputs = [line for line in seen[missed[0] + 2 :] if line.startswith("saw output")]
    assert len(outputs) <= 5 * len(missed)  # no more than its buffer was kept for it


def knows_stopped(seen: list[str]) -> bool:
    """Whether the laggard heard that chatty stopped: as an event, or in a snapshot."""
    return bool(seen) and seen[-1] in ("saw state chatty stopped", "saw snapshot chatty=stopped")


async def test_blocking_forms_in_the_hosts_loop_and_bad_selections_are_clear_errors(
    make: Callable[..., Manifest],
) -> None:
    manifest = make(svc=("blocking_in_a_coroutine", ExecutorKind.ASYNC))
    async with hosting(manifest) as host:
        seen = await wait_line(host, "svc", "refused: UnknownService")
    assert "in a coroutine, await its _async form" in seen[0]
    assert seen[1].startswith("refused: unknown event kind 'stat': expected one of ")
    assert seen[2] == 'refused: UnknownService unknown service "nosuch"'


async def test_a_child_without_the_hosts_socket_is_told_why(
    make: Callable[..., Manifest],
) -> None:
    async with Host(make(svc=("alone", ExecutorKind.PROCESS))) as host:  # no control server
        seen = await wait_line(host, "svc", "refused:")
    assert seen == [
        "refused: HostUnreachable TUISUP_SOCKET is not set: "
        "this process was not started by a tuisup host"
    ]


async def test_feeds_end_with_their_run_and_leave_nothing_following_the_host(
    make: Callable[..., Manifest], tmp_path: Path
) -> None:
    """A run that ended by itself, its feed unread and not closed, follows the host no more."""
    manifest = make(db="exec sleep 60", leaver=("leave", ExecutorKind.THREAD, {"restart": "no"}))
    async with hosting(manifest) as host:
        await wait_line(host, "leaver", "left")
        module = sys.modules[manifest.services["leaver"].target.partition(":")[0]]
        feed = module.FEEDS[0]
        with anyio.fail_after(10):
            while not (feed.closed and feed._task is not None and feed._task.done()):
                await anyio.sleep(0.01)


def test_tuisup_gives_its_services_its_socket(tmp_path: Path) -> None:
    """The real command: a child process observes and acts through `TUISUP_SOCKET`."""
    (tmp_path / "watcher.py").write_text(
        textwrap.dedent(
            """
            def watch(ctx):
                for ev in ctx.events(services=["db"], kinds=["state"]):
                    if ev.kind == "snapshot":
                        print("watcher saw db", ev.services[0].state, flush=True)
                        ctx.restart("db")
                    elif ev.state == "running":
                        print("watcher saw db running again", flush=True)
            """
        )
    )
    (tmp_path / "services.toml").write_text(
        textwrap.dedent(
            f"""
            [tuisup]
            socket = "{tmp_path / "s.sock"}"

            [services.db]
            command = "sleep 60"

            [services.watcher]
            target = "watcher:watch"
            executor = "process"
            depends_on = ["db"]
            """
        )
    )
    tuisup = Tuisup("--no-tui", cwd=tmp_path)
    tuisup.expect(lambda line: "watcher saw db running" in line and "again" not in line)
    tuisup.expect(lambda line: "watcher saw db running again" in line)
    tuisup.proc.send_signal(signal.SIGINT)
    assert tuisup.finish() == 0


async def test_a_replica_observes_its_siblings_by_their_table_and_may_not_move_them(
    tmp_path: Path,
) -> None:
    """`services=["worker"]` selects every replica; restarting its own table or group is
    moving itself."""
    (tmp_path / "replica.py").write_text(
        textwrap.dedent(
            """
            def run(ctx):
                if ctx.name != "worker.0":
                    ctx.token.wait()
                    return
                feed = ctx.events(services=["worker"], kinds=["state"])
                first = next(feed)
                print("snapshot", *sorted(v.name for v in first.services), flush=True)
                for name in ("worker", "crew"):
                    try:
                        ctx.restart(name)
                    except Exception as exc:
                        print(f"refused {name}: {type(exc).__name__}: {exc}", flush=True)
                ctx.token.wait()
            """
        )
    )
    (tmp_path / "services.toml").write_text(
        textwrap.dedent(
            """
            [services.worker]
            target = "replica:run"
            executor = "thread"
            replicas = 2

            [groups.crew]
            services = ["worker"]
            """
        )
    )
    from tuisup.manifest import load_manifest

    async with hosting(load_manifest(tmp_path / "services.toml")) as host:
        seen = await wait_line(host, "worker.0", "refused crew")
    assert seen == [
        "snapshot worker.0 worker.1",
        "refused worker: SelfControl: worker.0 cannot restart worker, its replicated service, "
        "which it is part of",
        "refused crew: SelfControl: worker.0 cannot restart crew, its group, which it is part of",
    ]
