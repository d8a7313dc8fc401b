"""In-process targets are imported, made and reloaded in a worker thread, never on the loop.

Regressions: a module's import and a `Service.__init__` ran on the event loop, so a slow
import (an `import torch`) froze the console and every other service on each start, and
nothing could stop it or bound it; the `importlib.reload` of a save ran on the loop too.
Real imports of real modules, real threads, the real host.
"""

from __future__ import annotations

import signal
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import Tuisup, wait_until
from tests.integration.loop_stalls import LoopStalls
from tests.integration.test_watch import armed, sentinel
from tuisup.engine import Host, ServiceState
from tuisup.spec import ExecutorKind, HostSettings, Manifest, ServiceSpec

S = ServiceState
IN_PROCESS = [ExecutorKind.THREAD, ExecutorKind.ASYNC]
STALL_MAX = 0.2
"""Seconds the loop may go without running a callback; blocked by a 1 s import, it was 1 s."""

BODY = """
def run(ctx):
    print("running", VERSION)
    ctx.token.wait()

async def arun(ctx):
    print("running", VERSION)
    await ctx.token.wait_async()

class Made(tuisup.Service):
    def __init__(self):
        print("made")
        time.sleep(DELAY)

    def run(self):
        self.cancellation_token.wait()
"""

SLOW = """
import time, tuisup
VERSION = {version}
DELAY = {delay}
print("importing", VERSION)
time.sleep(DELAY)
"""

HANGS = """
import pathlib, time, tuisup
VERSION = 1
DELAY = 0
print("importing")
RELEASE = pathlib.Path(__file__).with_suffix(".go")
while not RELEASE.exists():  # hangs until the test lets it go
    time.sleep(0.01)
print("imported")
"""


def module_source(head: str) -> str:
    return textwrap.dedent(head) + textwrap.dedent(BODY)


@pytest.fixture
def module(tmp_path: Path) -> Iterator[str]:
    """A fresh module name in tmp_path; a hanging import of it is let go when the test ends,
    and its abandoned thread waited for (it would print past the test's output capture)."""
    name = f"svc_{uuid.uuid4().hex[:10]}"
    yield name
    (tmp_path / f"{name}.go").touch()
    for thread in threading.enumerate():
        if thread.name.endswith("(making)"):
            thread.join(timeout=5)


def python_spec(
    tmp_path: Path, name: str, target: str, kind: ExecutorKind, **options: Any
) -> ServiceSpec:
    return ServiceSpec(
        name=name, argv=(), command=target, target=target, executor=kind, cwd=tmp_path, **options
    )


def manifest_of(tmp_path: Path, *specs: ServiceSpec) -> Manifest:
    settings = HostSettings(log_dir=tmp_path / "logs", shutdown_timeout=10)
    return Manifest(
        path=tmp_path / "services.toml", settings=settings, services={s.name: s for s in specs}
    )


def attribute(kind: ExecutorKind) -> str:
    return "arun" if kind is ExecutorKind.ASYNC else "run"


def log_text(host: Host, name: str) -> str:
    return "\n".join(line for b in host.store.since(name, 0) for line in b.lines)


async def wait_log(host: Host, name: str, text: str, timeout: float = 10.0) -> None:
    try:
        await wait_until(host, lambda _: text in log_text(host, name), timeout)
    except TimeoutError:
        raise AssertionError(f"{text!r} not in {name}'s log: {log_text(host, name)}") from None


@pytest.mark.parametrize("kind", IN_PROCESS, ids=str)
async def test_a_slow_import_does_not_block_the_loop(
    tmp_path: Path, module: str, kind: ExecutorKind
) -> None:
    (tmp_path / f"{module}.py").write_text(module_source(SLOW.format(version=1, delay=1.0)))
    spec = python_spec(tmp_path, "slow", f"{module}:{attribute(kind)}", kind)
    with LoopStalls() as stalls:
        async with Host(manifest_of(tmp_path, spec)) as host:
            began = time.monotonic()
            await wait_until(host, lambda s: s["slow"].state is S.RUNNING)
            took = time.monotonic() - began
            await wait_log(host, "slow", "running 1")
    assert took >= 0.9  # it did import slowly: the loop ran on meanwhile
    assert stalls.longest < STALL_MAX, f"the loop stalled for {stalls.longest:.3f}s"
    assert "importing 1" in log_text(host, "slow")  # what the import prints is the service's


async def test_a_slow_service_init_does_not_block_the_loop(tmp_path: Path, module: str) -> None:
    (tmp_path / f"{module}.py").write_text(module_source(SLOW.format(version=1, delay=1.0)))
    spec = python_spec(tmp_path, "made", f"{module}:Made", ExecutorKind.THREAD)
    async with Host(manifest_of(tmp_path, spec)) as host:
        await wait_until(host, lambda s: s["made"].state is S.RUNNING)  # imported (1 s)
        await host.stop("made")
        with LoopStalls() as stalls:  # the start again takes a second in `__init__` alone
            await host.start("made")
            await wait_until(host, lambda s: s["made"].state is S.RUNNING)
    assert stalls.longest < STALL_MAX, f"the loop stalled for {stalls.longest:.3f}s"
    assert log_text(host, "made").count("made") >= 2  # what `__init__` prints is the service's


@pytest.mark.parametrize("kind", IN_PROCESS, ids=str)
async def test_a_stop_during_a_hanging_import_ends_the_start_at_once(
    tmp_path: Path, module: str, kind: ExecutorKind
) -> None:
    (tmp_path / f"{module}.py").write_text(module_source(HANGS))
    spec = python_spec(tmp_path, "hangs", f"{module}:{attribute(kind)}", kind)
    async with Host(manifest_of(tmp_path, spec)) as host:
        await wait_log(host, "hangs", "importing")  # the loop runs on while it imports
        assert host.snapshot()["hangs"].state is S.STARTING
        began = time.monotonic()
        with anyio.fail_after(5):
            await host.stop("hangs")
        assert time.monotonic() - began < 1
        snap = host.snapshot()["hangs"]
        assert (snap.state, snap.reason) == (S.STOPPED, "stopped while starting")
        # Let the abandoned import end: the service it would have made stays stopped, and
        # the next start (the module imported by now) runs.
        (tmp_path / f"{module}.go").touch()
        await wait_log(host, "hangs", "imported")
        assert host.snapshot()["hangs"].state is S.STOPPED
        assert "running" not in log_text(host, "hangs")
        await host.start("hangs")
        await wait_until(host, lambda s: s["hangs"].state is S.RUNNING)
        await wait_log(host, "hangs", "running 1")


@pytest.mark.parametrize("kind", IN_PROCESS, ids=str)
async def test_a_hanging_import_fails_after_start_timeout(
    tmp_path: Path, module: str, kind: ExecutorKind
) -> None:
    (tmp_path / f"{module}.py").write_text(module_source(HANGS))
    spec = python_spec(tmp_path, "hangs", f"{module}:{attribute(kind)}", kind, start_timeout=0.5)
    async with Host(manifest_of(tmp_path, spec)) as host:
        began = time.monotonic()
        snap = await wait_until(host, lambda s: s["hangs"].state is S.FAILED, timeout=5)
        assert time.monotonic() - began < 2
        assert snap["hangs"].reason == "cannot start: did not start within 0.5s"


async def test_a_hanging_import_does_not_hold_up_another_services_start(
    tmp_path: Path, module: str
) -> None:
    (tmp_path / f"{module}.py").write_text(module_source(HANGS))
    other = f"other_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{other}.py").write_text(module_source(SLOW.format(version=7, delay=0)))
    hangs = python_spec(tmp_path, "hangs", f"{module}:run", ExecutorKind.THREAD)
    fine = python_spec(tmp_path, "fine", f"{other}:arun", ExecutorKind.ASYNC)
    async with Host(manifest_of(tmp_path, hangs, fine)) as host:
        await wait_log(host, "hangs", "importing")
        await wait_until(host, lambda s: s["fine"].state is S.RUNNING, timeout=5)
        await wait_log(host, "fine", "running 7")
        assert host.snapshot()["hangs"].state is S.STARTING


def save(path: Path, text: str) -> None:
    """Write `text` to `path` as an editor does: a new file renamed over the old one."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.replace(path)


@pytest.mark.parametrize("kind", IN_PROCESS, ids=str)
async def test_a_save_that_reloads_a_slow_module_does_not_block_the_loop(
    tmp_path: Path, module: str, kind: ExecutorKind
) -> None:
    path = tmp_path / f"{module}.py"
    path.write_text(module_source(SLOW.format(version=1, delay=0)))
    spec = python_spec(
        tmp_path, "slow", f"{module}:{attribute(kind)}", kind, watch=(path.name,), watch_debounce=50
    )
    async with Host(manifest_of(tmp_path, spec, sentinel(tmp_path))) as host:
        await armed(host, tmp_path)
        await wait_log(host, "slow", "running 1")
        with LoopStalls() as stalls:
            save(path, module_source(SLOW.format(version=2, delay=1.0)))
            await wait_log(host, "slow", "running 2")
    assert stalls.longest < STALL_MAX, f"the loop stalled for {stalls.longest:.3f}s"
    assert "importing 2" in log_text(host, "slow")


@pytest.mark.parametrize("kind", IN_PROCESS, ids=str)
async def test_a_save_that_breaks_the_module_fails_the_start_instead_of_running_old_code(
    tmp_path: Path, module: str, kind: ExecutorKind
) -> None:
    path = tmp_path / f"{module}.py"
    path.write_text(module_source(SLOW.format(version=1, delay=0)))
    spec = python_spec(
        tmp_path,
        "svc",
        f"{module}:{attribute(kind)}",
        kind,
        watch=(path.name,),
        watch_debounce=50,
        max_restarts=0,
    )
    async with Host(manifest_of(tmp_path, spec, sentinel(tmp_path))) as host:
        await armed(host, tmp_path)
        await wait_log(host, "svc", "running 1")
        save(path, module_source(SLOW.format(version=2, delay=0)) + "\ndef broken(:\n")
        snap = await wait_until(
            host,
            lambda s: s["svc"].state is S.FAILED or log_text(host, "svc").count("running 1") > 1,
        )
        assert log_text(host, "svc").count("running 1") == 1, "it ran the old code again"
        assert "SyntaxError" in (snap["svc"].reason or ""), snap["svc"].reason
        # The fix saved next is reloaded, even though the broken version never ran.
        save(path, module_source(SLOW.format(version=3, delay=0)))
        await wait_log(host, "svc", "running 3")


def test_an_import_that_never_ends_does_not_hold_up_tuisups_exit(tmp_path: Path) -> None:
    (tmp_path / "forever.py").write_text(
        "import time\nprint('importing', flush=True)\nwhile True:\n    time.sleep(1)\n"
    )
    (tmp_path / "services.toml").write_text(
        '[services.forever]\ntarget = "forever:run"\nexecutor = "thread"\n'
    )
    tuisup = Tuisup("--no-tui", cwd=tmp_path)
    tuisup.expect(lambda line: "importing" in line)
    tuisup.proc.send_signal(signal.SIGTERM)
    assert tuisup.finish(timeout=10) == 0, tuisup.lines
    assert tuisup.lines[-1] == "tuisup: every service stopped"
