"""Python targets through all four executors: real threads, tasks and child interpreters."""

from __future__ import annotations

import signal
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import untimed, wait_until
from tuisup.engine import Host, ServiceState
from tuisup.engine.events import Missed, Output
from tuisup.spec import (
    BackoffKind,
    ExecutorKind,
    HostSettings,
    LogOptions,
    Manifest,
    ServiceSpec,
)

UNROTATED = LogOptions(max_bytes=0)

S = ServiceState
KINDS = [ExecutorKind.PROCESS, ExecutorKind.THREAD, ExecutorKind.ASYNC, ExecutorKind.ASYNC_PROCESS]

SOURCE = """
import asyncio, logging, sys, threading, time
import tuisup

def speak(ctx):
    print("hello from", ctx.name)
    print("to stderr", file=sys.stderr)
    worker = threading.Thread(target=lambda: print("from a thread it started"))
    worker.start(); worker.join()
    logging.getLogger("lib").warning("a library warning")
    ctx.log.info("via ctx.log")
    ctx.token.wait()

async def aspeak(ctx):
    print("hello from", ctx.name)
    print("to stderr", file=sys.stderr)
    async def child():
        print("from a task it started")
    await asyncio.create_task(child())
    worker = threading.Thread(target=lambda: print("from a thread it started"))
    worker.start(); worker.join()
    logging.getLogger("lib").warning("a library warning")
    ctx.log.info("via ctx.log")
    await ctx.token.wait_async()

def crash(ctx):
    print("about to crash")
    raise ValueError("boom")

async def acrash(ctx):
    print("about to crash")
    raise ValueError("boom")

def polite():
    from tuisup import Context

def cooperative(ctx):
    token = ctx.token
    print("has its token")
    while not token.wait(0.01):
        pass
    print("stopping cleanly")

async def acooperative(ctx):
    token = ctx.token
    print("has its token")
    await token.wait_async()
    print("stopping cleanly")

def quiet(ctx):
    ctx.token.wait()

async def aquiet(ctx):
    await ctx.token.wait_async()

def stubborn(ctx):
    print("ignoring the token", ctx.cancelled)
    while True:
        time.sleep(0.02)

async def astubborn(ctx):
    print("ignoring the token", ctx.cancelled)
    while True:
        await asyncio.sleep(0.02)

def plain(ctx):
    try:
        print("plain and busy")  # inside: the stop may come right after this line
        while True:
            time.sleep(0.05)
    finally:
        # Asks for its token only now, in its cleanup: the stop was a plain one still.
        (ctx.cwd / f"finally-{ctx.name}").write_text(f"cancelled={ctx.cancelled}")

async def aplain(ctx):
    try:
        print("plain and busy")  # inside: the stop may come right after this line
        while True:
            await asyncio.sleep(0.05)
    finally:
        await asyncio.sleep(0.01)  # cancelled once, as asyncio does: a finally may await
        # Asks for its token only now, in its cleanup: the stop was a plain one still.
        (ctx.cwd / f"finally-{ctx.name}").write_text(f"cancelled={ctx.cancelled}")

def slow_cleanup(ctx):
    token = ctx.token
    print("up")
    token.wait()
    time.sleep(0.5)
    print("cleaned up")

async def aslow_cleanup(ctx):
    token = ctx.token
    print("up")
    await token.wait_async()
    await asyncio.sleep(0.5)
    print("cleaned up")

def late(ctx):
    print("up")
    time.sleep(0.3)
    while not ctx.cancelled:
        print("asked")
        time.sleep(0.01)
    print("asked late, stopped cleanly")

async def alate(ctx):
    print("up")
    await asyncio.sleep(0.3)
    while not ctx.cancelled:
        print("asked")
        await asyncio.sleep(0.01)
    print("asked late, stopped cleanly")

def unkillable(ctx):
    print("deaf to everything")
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        try:
            time.sleep(0.02)
        except KeyboardInterrupt:
            pass

def chatty(ctx):
    n = 0
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        print(f"line {n}")
        n += 1
    print(f"done {n}")

async def achatty(ctx):
    for n in range(20_000):
        print(f"line {n}")
        if n % 1000 == 999:
            await asyncio.sleep(0)
    print("done 20000")

class Counter(tuisup.Service):
    def __init__(self):
        self.count = 0
        self.token = self.cancellation_token
        self.log.info("made %s", self.ctx.name)
    def run(self):
        while not self.token.wait(0.005):
            self.count += 1
        print("counter stopped after", self.count)

class ACounter(tuisup.Service):
    async def run_async(self):
        token = self.cancellation_token
        print("async counting")
        await token.wait_async()
        print("async counted")

def no_args():
    print("called without a context")

async def block_when_told(ctx):
    flag = ctx.cwd / "block-now"
    while not await ctx.sleep_async(0.01):
        if flag.exists():
            flag.unlink()
            print("blocking now")
            time.sleep(2.0)  # over STALL + PING_EVERY: seen whatever the ping's phase

async def blocker(ctx):
    print("about to block")
    time.sleep(1.3)
    await ctx.token.wait_async()
"""


def sync_or_async(kind: ExecutorKind, name: str) -> str:
    return f"a{name}" if kind in (ExecutorKind.ASYNC, ExecutorKind.ASYNC_PROCESS) else name


@pytest.fixture
def python_manifest(tmp_path: Path) -> Callable[..., Manifest]:
    """make(svc=(attribute, executor, {options})) with SOURCE as a fresh module."""
    module = f"svc_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(SOURCE))

    def make(shutdown_timeout: float = 10.0, **services: tuple[Any, ...]) -> Manifest:
        specs = {}
        for name, (attribute, executor, *rest) in services.items():
            options = rest[0] if rest else {}
            specs[name] = ServiceSpec(
                name=name,
                argv=(),
                command=f"{module}:{attribute}",
                target=f"{module}:{attribute}",
                executor=executor,
                cwd=tmp_path,
                **options,
            )
        settings = HostSettings(log_dir=tmp_path / "logs", shutdown_timeout=shutdown_timeout)
        return Manifest(path=tmp_path / "services.toml", settings=settings, services=specs)

    return make


def log_of(host: Host, name: str, stream: str | None = None) -> list[str]:
    return [
        line
        for b in host.store.since(name, 0)
        if stream is None or b.stream == stream
        for line in b.lines
    ]


async def wait_log(host: Host, name: str, text: str, timeout: float = 10.0) -> None:
    try:
        await wait_until(host, lambda _: any(text in line for line in log_of(host, name)), timeout)
    except TimeoutError:
        raise AssertionError(f"{text!r} not in {name}'s log: {log_of(host, name)}") from None


async def stop_after(host: Host, name: str, text: str) -> float:
    """Stop `name` once `text` is in its log; return the seconds the stop took."""
    await wait_log(host, name, text)
    began = time.monotonic()
    await host.stop(name)
    return time.monotonic() - began


@pytest.mark.parametrize("kind", KINDS)
async def test_output_lands_in_the_services_own_log(
    python_manifest: Callable[..., Manifest], kind: ExecutorKind
) -> None:
    other = ExecutorKind.THREAD if kind is not ExecutorKind.THREAD else ExecutorKind.ASYNC
    manifest = python_manifest(
        talker=(sync_or_async(kind, "speak"), kind),
        neighbour=(sync_or_async(other, "quiet"), other),
    )
    async with Host(manifest) as host:
        await wait_until(host, lambda s: s["talker"].state is S.RUNNING)
        for text in ("via ctx.log", "from a thread it started", "a library warning"):
            await wait_log(host, "talker", text)
        stdout, stderr = log_of(host, "talker", "stdout"), log_of(host, "talker", "stderr")
        assert log_of(host, "neighbour") == []
    assert "hello from talker" in stdout
    assert "from a thread it started" in stdout
    if kind in (ExecutorKind.ASYNC, ExecutorKind.ASYNC_PROCESS):
        assert "from a task it started" in stdout
    assert "to stderr" in stderr
    assert "a library warning" in stderr
    assert "INFO via ctx.log" in stderr


@pytest.mark.parametrize("kind", KINDS)
async def test_a_crash_logs_the_traceback_and_restarts_with_backoff(
    python_manifest: Callable[..., Manifest], kind: ExecutorKind
) -> None:
    options = {
        "backoff": BackoffKind.FIXED,
        "backoff_delay": 0.05,
        "jitter": 0.0,
        "max_restarts": 1,
    }
    manifest = python_manifest(crashy=(sync_or_async(kind, "crash"), kind, options))
    async with Host(manifest) as host:
        snap = await wait_until(host, lambda s: s["crashy"].state is S.FAILED)
        lines = log_of(host, "crashy")
    status = snap["crashy"]
    assert status.restarts == 1 and status.reason == "1 restart in 60s"
    assert [r.status.error for r in status.history] == ["ValueError: boom"] * 2
    assert lines.count("about to crash") == 2
    assert "Traceback (most recent call last):" in lines
    assert "ValueError: boom" in lines


@pytest.mark.parametrize("kind", KINDS)
async def test_a_cooperative_stop_is_a_clean_exit(
    python_manifest: Callable[..., Manifest], kind: ExecutorKind
) -> None:
    manifest = python_manifest(calm=(sync_or_async(kind, "cooperative"), kind))
    async with Host(manifest) as host:
        took = await stop_after(host, "calm", "has its token")  # asked: a stop now goes through it
        await wait_log(host, "calm", "stopping cleanly")
        status = host.snapshot()["calm"]
    assert took < 2.0
    assert status.state is S.STOPPED
    assert status.history[-1].status.code == 0 and status.history[-1].status.error is None


@pytest.mark.parametrize("kind", KINDS)
async def test_a_service_that_asked_for_its_token_and_ignores_it_is_stopped_by_force(
    python_manifest: Callable[..., Manifest], kind: ExecutorKind
) -> None:
    manifest = python_manifest(mule=(sync_or_async(kind, "stubborn"), kind, {"stop_timeout": 0.3}))
    async with Host(manifest) as host:
        took = await stop_after(host, "mule", "ignoring the token")
        status = host.snapshot()["mule"]
    assert 0.3 <= took < 2.5
    assert status.state is S.STOPPED
    if kind.in_process is False:
        assert status.history[-1].status.signal == 9
    elif kind is ExecutorKind.THREAD:
        assert status.history[-1].status.error == "interrupted"


@pytest.mark.parametrize("kind", KINDS)
async def test_plain_python_services_that_never_ask_for_their_token_stop_at_once(
    python_manifest: Callable[..., Manifest], kind: ExecutorKind, tmp_path: Path
) -> None:
    """Issue 10: a plain loop waited the whole stop_timeout (10 s) on every stop."""
    manifest = python_manifest(busy=(sync_or_async(kind, "plain"), kind, {"stop_timeout": 10}))
    async with Host(manifest) as host:
        took = await stop_after(host, "busy", "plain and busy")
        status = host.snapshot()["busy"]
        lines = log_of(host, "busy")
    assert took < 2.0
    assert status.state is S.STOPPED
    assert not any("Traceback" in line for line in lines)
    ended = status.history[-1].status
    if kind is ExecutorKind.PROCESS:
        # Python's default for SIGTERM: the process dies by it, no `finally` runs.
        assert ended.signal == signal.SIGTERM
        assert not (tmp_path / "finally-busy").exists()
    else:
        assert (tmp_path / "finally-busy").read_text() == "cancelled=True"
    if kind is ExecutorKind.ASYNC_PROCESS:
        assert ended.signal == signal.SIGTERM  # cancelled, then it ends by its signal
    if kind is ExecutorKind.ASYNC:
        assert ended.error == "cancelled"
    if kind is ExecutorKind.THREAD:
        assert ended.error == "interrupted"


async def test_a_plain_child_stopped_with_sigint_gets_keyboardinterrupt(
    python_manifest: Callable[..., Manifest], tmp_path: Path
) -> None:
    options = {"stop_timeout": 10, "stop_signal": signal.SIGINT}
    manifest = python_manifest(busy=("plain", ExecutorKind.PROCESS, options))
    async with Host(manifest) as host:
        took = await stop_after(host, "busy", "plain and busy")
        status = host.snapshot()["busy"]
        lines = log_of(host, "busy")
    assert took < 2.0
    assert status.state is S.STOPPED
    assert (tmp_path / "finally-busy").read_text() == "cancelled=True"
    # As a script ended by an uncaught KeyboardInterrupt: it dies by SIGINT. A requested
    # stop is no crash, so no traceback.
    assert status.history[-1].status.signal == signal.SIGINT
    assert not any("KeyboardInterrupt" in line for line in lines)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("attribute", ["slow_cleanup", "late"])
async def test_a_service_that_asked_for_its_token_gets_time_to_clean_up(
    python_manifest: Callable[..., Manifest], kind: ExecutorKind, attribute: str
) -> None:
    manifest = python_manifest(calm=(sync_or_async(kind, attribute), kind, {"stop_timeout": 10}))
    async with Host(manifest) as host:
        # `late` reads its token only after 0.3 s, then says so: from then on it cooperates.
        await wait_log(host, "calm", "up" if attribute == "slow_cleanup" else "asked")
        await host.stop("calm")
        status = host.snapshot()["calm"]
        lines = log_of(host, "calm")
    expected = "cleaned up" if attribute == "slow_cleanup" else "asked late, stopped cleanly"
    assert expected in lines
    assert status.state is S.STOPPED
    ended = status.history[-1].status
    assert ended.code == 0 and ended.error is None and ended.signal is None


@pytest.mark.parametrize("kind", KINDS)
async def test_an_import_error_fails_with_a_one_line_reason(
    python_manifest: Callable[..., Manifest], kind: ExecutorKind, tmp_path: Path
) -> None:
    (tmp_path / "broken_mod.py").write_text("import no_such_module_xyz\n")
    manifest = python_manifest(bad=("missing_attribute", kind))
    spec = manifest.services["bad"]
    from tuisup.model.record import replace

    broken = replace(spec, name="broken", target="broken_mod:run")
    manifest = replace(manifest, services={"bad": spec, "broken": broken})
    async with Host(manifest) as host:
        snap = await wait_until(host, lambda s: all(x.state is S.FAILED for x in s.values()))
        broken_log = log_of(host, "broken")
    assert (
        snap["bad"].reason is not None
        and "has no attribute missing_attribute" in snap["bad"].reason
    )
    reason = snap["broken"].reason
    assert reason == (
        "cannot start: cannot import broken_mod: "
        "ModuleNotFoundError: No module named 'no_such_module_xyz'"
    )
    assert "Traceback (most recent call last):" in broken_log


@pytest.mark.parametrize(
    ("attribute", "asked", "expected"),
    [
        ("Counter", "made", "counter stopped after"),
        ("ACounter", "async counting", "async counted"),
        ("no_args", "called without a context", "called without a context"),
    ],
)
async def test_service_classes_and_plain_callables_run_in_process_and_in_a_child(
    python_manifest: Callable[..., Manifest], attribute: str, asked: str, expected: str
) -> None:
    child_kind = ExecutorKind.ASYNC_PROCESS if attribute == "ACounter" else ExecutorKind.PROCESS
    manifest = python_manifest(inside=(attribute, None), child=(attribute, child_kind))
    async with Host(manifest) as host:
        for name in ("inside", "child"):  # once they have their token, stops go through it
            await wait_log(host, name, asked)
        await host.stop("inside")
        await host.stop("child")
        for name in ("inside", "child"):
            await wait_log(host, name, expected)
        snap = host.snapshot()
    assert snap["inside"].history[-1].status.error is None
    if attribute == "Counter":
        assert any("made inside" in line for line in log_of(host, "inside"))


async def test_all_four_run_side_by_side_and_a_stuck_thread_does_not_hold_up_shutdown(
    python_manifest: Callable[..., Manifest],
) -> None:
    manifest = python_manifest(
        shutdown_timeout=5.0,
        p=("cooperative", ExecutorKind.PROCESS),
        t=("cooperative", ExecutorKind.THREAD),
        a=("acooperative", ExecutorKind.ASYNC),
        ap=("acooperative", ExecutorKind.ASYNC_PROCESS),
        stuck=("unkillable", ExecutorKind.THREAD, {"stop_timeout": 0.5}),
    )
    async with Host(manifest) as host:
        await wait_until(host, lambda s: all(x.state is S.RUNNING for x in s.values()))
        pids = {name: status.pid for name, status in host.snapshot().items()}
        began = time.monotonic()
    took = time.monotonic() - began
    assert took < 2.0
    assert pids["p"] and pids["ap"] and pids["p"] != pids["ap"]
    final = host.snapshot()
    assert final["stuck"].state is S.FAILED
    assert {final[n].state for n in ("p", "t", "a", "ap")} == {S.STOPPED}


async def test_a_blocked_loop_is_reported_with_the_service_and_where(
    python_manifest: Callable[..., Manifest],
) -> None:
    manifest = python_manifest(hog=("blocker", ExecutorKind.ASYNC))
    async with Host(manifest) as host:
        await wait_log(host, "hog", "blocked the event loop", timeout=10)
        note = [line for line in log_of(host, "hog") if "blocked the event loop" in line][0]
    assert note.startswith("tuisup: hog blocked the event loop for 1.")
    assert "svc_" in note and "in blocker" in note


async def test_an_async_service_runs_on_the_hosts_own_loop(
    python_manifest: Callable[..., Manifest],
) -> None:
    manifest = python_manifest(a=("acooperative", ExecutorKind.ASYNC))
    async with Host(manifest) as host:
        await wait_until(host, lambda s: s["a"].state is S.RUNNING)
        assert host.snapshot()["a"].pid is None
        with anyio.fail_after(5):
            await host.stop("a")


def watchdogs() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "tuisup:watchdog"]


async def test_the_watchdog_still_names_a_blocking_service_after_quick_restarts(
    python_manifest: Callable[..., Manifest], tmp_path: Path
) -> None:
    """The old watchdog thread, told to quit, was still alive when the new run attached:
    no new thread was started, and the new run went unwatched (1 quick restart in 10)."""
    manifest = python_manifest(hog=("block_when_told", ExecutorKind.ASYNC))
    async with Host(manifest) as host:
        await wait_until(host, lambda s: s["hog"].state is S.RUNNING)
        for _ in range(40):
            old = watchdogs()
            await host.restart("hog")
            for thread in old:  # told to quit: each ends within a ping
                await anyio.to_thread.run_sync(thread.join, 5.0)
            assert watchdogs(), "an async service runs with no watchdog"
        (tmp_path / "block-now").touch()
        await wait_log(host, "hog", "blocked the event loop")


def output_events(host: Host, name: str) -> int:
    return sum(isinstance(e, Output) and e.service == name for e in host.bus.since(0))


async def test_a_thread_printing_in_a_loop_makes_a_bounded_number_of_output_events(
    python_manifest: Callable[..., Manifest], tmp_path: Path
) -> None:
    """Issue 9: one Output event per write (157,160 for a second of printing)."""
    # Tens of MB: no rotation, so that the one file holds every line.
    manifest = python_manifest(chatty=("chatty", ExecutorKind.THREAD, {"logs": UNROTATED}))
    async with Host(manifest) as host:
        snap = await wait_until(host, lambda s: s["chatty"].state is S.EXITED, timeout=20)
        events = output_events(host, "chatty")
        missed = [e for e in host.bus.since(0) if isinstance(e, Missed)]
    assert snap["chatty"].history[-1].status.code == 0
    assert not missed, f"the bus dropped {missed[0].count} events: far too many"
    lines = untimed((tmp_path / "logs" / "chatty.log").read_text().splitlines())
    count = int(lines[-1].removeprefix("done "))
    assert lines[:-1] == [f"line {n}" for n in range(count)]  # every line, in order
    print(f"thread: {count} lines in 1 s, {events} Output events")
    # One event per loop iteration, not per write: here ~1,500 for ~300,000 lines (a
    # process printing the same gets one per read: ~4,000).
    assert count > 10_000
    assert events * 20 < count and events < 10_000


async def test_an_async_service_printing_on_the_loop_is_batched_per_loop_iteration(
    python_manifest: Callable[..., Manifest], tmp_path: Path
) -> None:
    manifest = python_manifest(chatty=("achatty", ExecutorKind.ASYNC))
    async with Host(manifest) as host:
        await wait_until(host, lambda s: s["chatty"].state is S.EXITED, timeout=20)
        events = output_events(host, "chatty")
    lines = untimed((tmp_path / "logs" / "chatty.log").read_text().splitlines())
    assert lines == [f"line {n}" for n in range(20_000)] + ["done 20000"]
    print(f"async: 20,000 lines in 20 loop iterations, {events} Output events")
    assert events <= 50
