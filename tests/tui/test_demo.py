"""The demo as a newcomer runs it: its CPU-bound service works without heating the laptop."""

from __future__ import annotations

from pathlib import Path

import anyio

from tests.conftest import wait_event, wait_until
from tuisup.engine import Host, ServiceState
from tuisup.engine.events import Output
from tuisup.spec import ExecutorKind, HostSettings, Manifest, ServiceSpec

ROOT = Path(__file__).resolve().parents[2]
S = ServiceState


def on_cpu(pid: int) -> float:
    """Seconds the process's threads ran or were ready to run (waiting for a core).

    Unlike CPU time, this is the same on a busy machine: a busy loop is always one or
    the other, a resting service neither.
    """
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        ran, waited, _ = (task / "schedstat").read_text().split()
        total += int(ran) + int(waited)
    return total / 1e9


def bursts(host: Host) -> int:
    return sum(
        "hashes/s" in line for batch in host.store.since("crunch", 0) for line in batch.lines
    )


async def until_bursts(host: Host, count: int) -> float:
    """Wait, output event by output event, for the cruncher's `count`-th burst report."""
    after = host.bus.last_seq
    with anyio.fail_after(15):
        while bursts(host) < count:
            await wait_event(host, lambda e: isinstance(e, Output), after)
            after = host.bus.last_seq
    return anyio.current_time()


async def test_the_demo_cruncher_works_in_bursts_and_does_not_hold_a_core() -> None:
    spec = ServiceSpec(
        name="crunch",
        argv=(),
        command="demo.crunch:Cruncher",
        target="demo.crunch:Cruncher",
        executor=ExecutorKind.PROCESS,
        cwd=ROOT,
        stop_timeout=3.0,
    )
    manifest = Manifest(
        path=ROOT / "services.toml", settings=HostSettings(log_dir=None), services={"crunch": spec}
    )
    async with Host(manifest) as host:
        await wait_until(host, lambda s: s["crunch"].state is S.RUNNING)
        pid = host.snapshot()["crunch"].pid
        assert pid is not None
        began = await until_bursts(host, 1)
        before = on_cpu(pid)
        ended = await until_bursts(host, 2)  # one whole period: a rest and a burst
        share = (on_cpu(pid) - before) / (ended - began)
        assert share < 0.6, f"on a core {share:.0%} of the time"
        await host.stop("crunch")
        last = host.snapshot()["crunch"].last_exit
        assert last is not None and last.status.signal is None, last  # it heard its token
        kept = [line for batch in host.store.since("crunch", 0) for line in batch.lines]
        assert any("cruncher stopped" in line for line in kept), kept[-5:]
