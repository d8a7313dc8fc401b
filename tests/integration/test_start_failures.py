"""A service that cannot start is that service's `failed`; the host and the others go on.

Regressions from hostile input: an exception other than an import error in a start (a
`Service.__init__` that raises, `SystemExit` while importing, running out of file
descriptors) took the whole host down; a start that hangs could not be stopped.
"""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import tagged_pids, wait_gone, wait_until
from tuisup.engine import Host, ServiceState
from tuisup.spec import ExecutorKind, HostSettings, Manifest, ServiceSpec

S = ServiceState
KINDS = [ExecutorKind.PROCESS, ExecutorKind.THREAD, ExecutorKind.ASYNC, ExecutorKind.ASYNC_PROCESS]

SOURCE = """
import time
import tuisup

class BadInit(tuisup.Service):
    def __init__(self):
        raise ValueError("bad config in __init__")
    def run(self):
        pass

class ABadInit(tuisup.Service):
    def __init__(self):
        raise ValueError("bad config in __init__")
    async def run_async(self):
        pass

def fine(ctx):
    ctx.token.wait()

async def afine(ctx):
    await ctx.token.wait_async()
"""


@pytest.fixture
def module(tmp_path: Path) -> str:
    name = f"svc_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(SOURCE))
    return name


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


def log_text(host: Host, name: str) -> str:
    return "\n".join(line for b in host.store.since(name, 0) for line in b.lines)


def is_async(kind: ExecutorKind) -> bool:
    return kind in (ExecutorKind.ASYNC, ExecutorKind.ASYNC_PROCESS)


@pytest.mark.parametrize("kind", KINDS, ids=str)
async def test_a_service_whose_init_raises_fails_alone(
    tmp_path: Path, module: str, kind: ExecutorKind
) -> None:
    bad = f"{module}:{'ABadInit' if is_async(kind) else 'BadInit'}"
    good = f"{module}:{'afine' if is_async(kind) else 'fine'}"
    manifest = manifest_of(
        tmp_path, python_spec(tmp_path, "bad", bad, kind), python_spec(tmp_path, "good", good, kind)
    )
    async with Host(manifest) as host:
        snap = await wait_until(
            host, lambda s: s["bad"].state is S.FAILED and s["good"].state is S.RUNNING
        )
        assert "ValueError: bad config in __init__" in (snap["bad"].reason or "")
        log = log_text(host, "bad")
        assert "Traceback (most recent call last)" in log and "raise ValueError" in log, log
        # The host still takes commands, and the failed service can be tried again.
        await host.restart("good")
        await wait_until(host, lambda s: s["good"].state is S.RUNNING and s["good"].restarts == 1)


@pytest.mark.parametrize("kind", KINDS, ids=str)
async def test_system_exit_while_importing_a_target_fails_that_service(
    tmp_path: Path, kind: ExecutorKind
) -> None:
    name = f"exits_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{name}.py").write_text("raise SystemExit(3)\n")
    manifest = manifest_of(tmp_path, python_spec(tmp_path, "quits", f"{name}:run", kind))
    async with Host(manifest) as host:
        snap = await wait_until(host, lambda s: s["quits"].state is S.FAILED)
        assert "SystemExit" in (snap["quits"].reason or "") or "code 3" in (
            snap["quits"].reason or ""
        ), snap["quits"].reason


def run_tuisup(tmp_path: Path, soft: int, hard: int) -> subprocess.Popen[str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return subprocess.Popen(
        [sys.executable, "-m", "tuisup", "--no-tui"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=limit,
    )


def many_services(tmp_path: Path, count: int, token: str) -> None:
    tables = "".join(
        f'[services.s{i:03d}]\ncommand = "sleep 60"\nenv = {{ TUISUP_TEST_TOKEN = "{token}" }}\n'
        for i in range(count)
    )
    (tmp_path / "services.toml").write_text(tables)


def read_until(proc: subprocess.Popen[str], done: Callable[[list[str]], bool]) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 20
    while not done(lines):
        assert time.monotonic() < deadline, lines[-10:]
        line = proc.stdout.readline()
        assert line, (
            f"tuisup exited ({proc.wait()}): {lines[-5:]} {proc.stderr and proc.stderr.read()}"
        )
        lines.append(line.rstrip("\n"))
    return lines


def test_running_out_of_file_descriptors_fails_services_not_the_host(
    tmp_path: Path, token: str
) -> None:
    count = 40
    many_services(tmp_path, count, token)
    proc = run_tuisup(tmp_path, 48, 48)  # a hard limit that 40 services cannot fit in
    try:

        def settled(lines: list[str]) -> bool:
            return sum(" started (pid " in x or " failed: " in x for x in lines) >= count

        lines = read_until(proc, settled)
        failed = [x for x in lines if " failed: " in x]
        assert failed and all("Too many open files" in x for x in failed), failed[:3]
        assert any(" started (pid " in x for x in lines)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not list(tagged_pids(token))


def test_the_soft_open_files_limit_is_raised_to_the_hard_limit(tmp_path: Path, token: str) -> None:
    count = 60
    many_services(tmp_path, count, token)
    proc = run_tuisup(tmp_path, 64, 4096)  # the soft limit alone would not fit 60 services
    try:
        lines = read_until(proc, lambda x: sum(" started (pid " in y for y in x) == count)
        assert not any(" failed: " in x for x in lines)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not list(tagged_pids(token))


HANGS = "import time\ntime.sleep(60)\ndef run(ctx):\n    pass\n"


@pytest.mark.parametrize("kind", [ExecutorKind.PROCESS, ExecutorKind.ASYNC_PROCESS], ids=str)
async def test_a_start_that_hangs_fails_after_start_timeout(
    tmp_path: Path, token: str, kind: ExecutorKind
) -> None:
    name = f"slow_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{name}.py").write_text(HANGS.replace("def run", "async def run"))
    spec = python_spec(
        tmp_path,
        "slow",
        f"{name}:run",
        kind,
        start_timeout=0.5,
        env={"TUISUP_TEST_TOKEN": token},
    )
    async with Host(manifest_of(tmp_path, spec)) as host:
        snap = await wait_until(host, lambda s: s["slow"].state is S.FAILED, timeout=5)
        assert snap["slow"].reason == "cannot start: did not start within 0.5s"
        await wait_gone(token)


async def test_a_stop_during_a_hanging_start_ends_it_at_once(tmp_path: Path, token: str) -> None:
    name = f"slow_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{name}.py").write_text(HANGS)
    spec = python_spec(
        tmp_path,
        "slow",
        f"{name}:run",
        ExecutorKind.PROCESS,
        env={"TUISUP_TEST_TOKEN": token},
    )
    async with Host(manifest_of(tmp_path, spec)) as host:
        await wait_until(host, lambda s: s["slow"].state is S.STARTING)
        with anyio.fail_after(2):
            while not list(tagged_pids(token)):
                await anyio.sleep(0.01)
        began = time.monotonic()
        with anyio.fail_after(5):
            await host.stop("slow")
        assert time.monotonic() - began < 2
        assert host.snapshot()["slow"].state is S.STOPPED
        await wait_gone(token)
        async with anyio.create_task_group() as tg:  # it starts again, and shutdown ends it
            tg.start_soon(host.start, "slow")
            await wait_until(host, lambda s: s["slow"].state is S.STARTING)
            with anyio.fail_after(3):
                await host.shutdown()
        assert host.snapshot()["slow"].state is S.STOPPED
    assert not list(tagged_pids(token))
