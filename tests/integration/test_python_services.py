"""Python targets through all four executors: real threads, tasks and child interpreters."""

from __future__ import annotations

import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import wait_until
from tuisup.engine import Host, ServiceState
from tuisup.spec import BackoffKind, ExecutorKind, HostSettings, Manifest, ServiceSpec

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
    while not ctx.token.wait(0.01):
        pass
    print("stopping cleanly")

async def acooperative(ctx):
    await ctx.token.wait_async()
    print("stopping cleanly")

def stubborn(ctx):
    print("ignoring the token")
    while True:
        time.sleep(0.02)

async def astubborn(ctx):
    print("ignoring the token")
    while True:
        await asyncio.sleep(0.02)

class Counter(tuisup.Service):
    def __init__(self):
        self.count = 0
        self.log.info("made %s", self.ctx.name)
    def run(self):
        while not self.cancellation_token.wait(0.005):
            self.count += 1
        print("counter stopped after", self.count)

class ACounter(tuisup.Service):
    async def run_async(self):
        await self.cancellation_token.wait_async()
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
        return Manifest(tmp_path / "services.toml", settings, specs)

    return make


def log_of(host: Host, name: str, stream: str | None = None) -> list[str]:
    return [
        line for b in host.logs(name) if stream is None or b.stream == stream for line in b.lines
    ]


async def wait_log(host: Host, name: str, text: str, timeout: float = 10.0) -> None:
    try:
        await wait_until(host, lambda _: any(text in line for line in log_of(host, name)), timeout)
    except TimeoutError:
        raise AssertionError(f"{text!r} not in {name}'s log: {log_of(host, name)}") from None


@pytest.mark.parametrize("kind", KINDS)
async def test_output_lands_in_the_services_own_log(
    python_manifest: Callable[..., Manifest], kind: ExecutorKind
) -> None:
    other = ExecutorKind.THREAD if kind is not ExecutorKind.THREAD else ExecutorKind.ASYNC
    manifest = python_manifest(
        talker=(sync_or_async(kind, "speak"), kind),
        neighbour=(sync_or_async(other, "cooperative"), other),
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
        await wait_until(host, lambda s: s["calm"].state is S.RUNNING)
        began = time.monotonic()
        await host.stop("calm")
        took = time.monotonic() - began
        await wait_log(host, "calm", "stopping cleanly")
        status = host.snapshot()["calm"]
    assert took < 2.0
    assert status.state is S.STOPPED
    assert status.history[-1].status.code == 0 and status.history[-1].status.error is None


@pytest.mark.parametrize("kind", KINDS)
async def test_a_service_that_ignores_its_token_is_stopped_by_force(
    python_manifest: Callable[..., Manifest], kind: ExecutorKind
) -> None:
    manifest = python_manifest(mule=(sync_or_async(kind, "stubborn"), kind, {"stop_timeout": 0.3}))
    async with Host(manifest) as host:
        await wait_log(host, "mule", "ignoring the token")
        began = time.monotonic()
        await host.stop("mule")
        took = time.monotonic() - began
        status = host.snapshot()["mule"]
    assert 0.3 <= took < 2.5
    if kind is ExecutorKind.THREAD:
        assert status.state is S.FAILED and status.reason == "did not stop within 0.3s"
    else:
        assert status.state is S.STOPPED
    if kind.in_process is False:
        assert status.history[-1].status.signal == 9


@pytest.mark.parametrize("kind", KINDS)
async def test_an_import_error_fails_with_a_one_line_reason(
    python_manifest: Callable[..., Manifest], kind: ExecutorKind, tmp_path: Path
) -> None:
    (tmp_path / "broken_mod.py").write_text("import no_such_module_xyz\n")
    manifest = python_manifest(bad=("missing_attribute", kind))
    spec = manifest.services["bad"]
    from dataclasses import replace

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
    ("attribute", "expected"),
    [
        ("Counter", "counter stopped after"),
        ("ACounter", "async counted"),
        ("no_args", "called without a context"),
    ],
)
async def test_service_classes_and_plain_callables_run_in_process_and_in_a_child(
    python_manifest: Callable[..., Manifest], attribute: str, expected: str
) -> None:
    child_kind = ExecutorKind.ASYNC_PROCESS if attribute == "ACounter" else ExecutorKind.PROCESS
    manifest = python_manifest(inside=(attribute, None), child=(attribute, child_kind))
    async with Host(manifest) as host:
        await wait_until(host, lambda s: all(x.state in (S.RUNNING, S.EXITED) for x in s.values()))
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
        stuck=("stubborn", ExecutorKind.THREAD, {"stop_timeout": 0.5}),
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
