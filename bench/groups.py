"""What replicas and groups cost (issue 14).

1. Scaling: a Host in this process runs `worker` (`sleep`, `replicas = 1`); `Host.scale`
   takes it to 100 replicas, timed until all 100 run (their `running` events). In the same
   run, a Host starts 100 `sleep` services from scratch, timed from its start to all 100
   running. Target: scaling within 1.2x of starting.
2. `one_for_all` of 10 members (`sleep`, `backoff = "immediate"`): a member SIGKILLed
   (`Host.kill`), timed from the kill to all 10 running again, minus the stops of the nine
   others (each member's `stopping` to `stopped`, from the events). Target: under 50 ms.
3. Idle: `tuisup --no-tui` with 50 `sleep` services in 10 groups of 5, then the same without
   the groups, each left alone for a window once all run: the context switches of every
   thread of tuisup (/proc/PID/task/*/status). Target: none, as without groups.

    uv run python bench/groups.py [--runs 5] [--crashes 30] [--idle 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

from tuisup.engine import Host, ServiceState
from tuisup.engine.events import StateChanged
from tuisup.manifest import load_manifest

S = ServiceState


def write(folder: Path, text: str) -> Path:
    path = folder / "services.toml"
    path.write_text(text)
    return path


async def running_after(host: Host, seq: int, names: set[str]) -> float:
    """Wait until each of `names` had a `running` event after `seq`; the last one's time."""
    left = set(names)
    async for batch in host.bus.stream(seq):
        for event in batch:
            if isinstance(event, StateChanged) and event.state is S.RUNNING:
                left.discard(event.service)
                if not left:
                    return time.perf_counter()
    raise AssertionError("unreachable")


async def scale_once(folder: Path) -> tuple[float, float]:
    """(seconds to scale 1 → 100, seconds to start 100 from scratch)."""
    one = write(
        folder,
        '[tuisup]\nlog_dir = false\n[services.worker]\ncommand = "sleep 600"\nreplicas = 1\n',
    )
    async with Host(load_manifest(one)) as host:
        await running_after(host, 0, {"worker.0"})
        seq = host.bus.last_seq
        start = time.perf_counter()
        await host.scale("worker", 100)
        done = await running_after(host, seq, {f"worker.{i}" for i in range(1, 100)})
        scaled = done - start
    many = "[tuisup]\nlog_dir = false\n" + "".join(
        f'[services.s{i}]\ncommand = "sleep 600"\n' for i in range(100)
    )
    manifest = load_manifest(write(folder, many))
    start = time.perf_counter()
    async with Host(manifest) as host:
        done = await running_after(host, 0, {f"s{i}" for i in range(100)})
        fresh = done - start
    return scaled, fresh


async def one_for_all(folder: Path, crashes: int) -> list[float]:
    """Milliseconds from a member's SIGKILL to all 10 running again, minus the others' stops."""
    members = [f"m{i}" for i in range(10)]
    text = "[tuisup]\nlog_dir = false\n" + "".join(
        f'[services.{m}]\ncommand = "sleep 600"\nbackoff = "immediate"\nmax_restarts = 10000\n'
        for m in members
    )
    listed = ", ".join(f'"{m}"' for m in members)
    text += f'[groups.all]\nservices = [{listed}]\nstrategy = "one_for_all"\n'
    text += "max_restarts = 100000\nrestart_window = 1\n"
    times: list[float] = []
    async with Host(load_manifest(write(folder, text))) as host:
        await running_after(host, 0, set(members))
        for i in range(crashes):
            victim = members[i % 10]
            before = {n: v.pid for n, v in host.snapshot().items()}
            seq = host.bus.last_seq
            start = time.perf_counter()
            await host.kill(victim)
            await running_after(host, seq, set(members))
            # Every member runs a new process now (wait for the last running event above).
            assert all(host.snapshot()[n].pid != before[n] for n in members)
            stopping: dict[str, float] = {}
            stops = 0.0
            for event in host.bus.since(seq):
                if isinstance(event, StateChanged) and event.state is S.STOPPING:
                    stopping[event.service] = event.ts
                elif isinstance(event, StateChanged) and event.state is S.STOPPED:
                    stops += event.ts - stopping.pop(event.service, event.ts)
            times.append((time.perf_counter() - start - stops) * 1000)
    return times


def switches(pid: int) -> int:
    """Voluntary and involuntary context switches of every thread of `pid`."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            text = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


def idle(folder: Path, seconds: float, *, groups: bool) -> int:
    """Context switches of a `tuisup --no-tui` with 50 services, idle for `seconds`."""
    text = "[tuisup]\nlog_dir = false\nreload = false\n" + "".join(
        f'[services.s{i}]\ncommand = "sleep 600"\n' for i in range(50)
    )
    if groups:
        for g in range(10):
            names = ", ".join(f'"s{g * 5 + i}"' for i in range(5))
            text += f'[groups.g{g}]\nservices = [{names}]\nstrategy = "one_for_all"\n'
    path = write(folder, text)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuisup", "--no-tui", "-f", str(path)],
        cwd=folder,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        started = 0
        while started < 50:
            line = proc.stdout.readline()
            assert line, "tuisup ended"
            started += " started (pid " in line
        time.sleep(1.5)  # dependents' `started` timers (none here) and the last writes
        first = switches(proc.pid)
        time.sleep(seconds)
        return switches(proc.pid) - first
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--crashes", type=int, default=30)
    parser.add_argument("--idle", type=float, default=5.0)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pairs = [anyio.run(scale_once, folder) for _ in range(options.runs)]
        scaled = statistics.median(p[0] for p in pairs) * 1000
        fresh = statistics.median(p[1] for p in pairs) * 1000
        print(f"scale 1 → 100 replicas running: {scaled:.0f} ms (median of {options.runs})")
        print(f"100 services from scratch running: {fresh:.0f} ms; ratio {scaled / fresh:.2f}")
        times = sorted(anyio.run(one_for_all, folder, options.crashes))
        p90 = times[int(len(times) * 0.9) - 1]
        print(
            f"one_for_all of 10, crash → all 10 running, minus stops: median "
            f"{statistics.median(times):.1f} ms, p90 {p90:.1f} ms ({len(times)} crashes)"
        )
        with_groups = idle(folder, options.idle, groups=True)
        without = idle(folder, options.idle, groups=False)
        print(
            f"idle {options.idle:g} s, 50 services: {with_groups} context switches in 10 "
            f"groups, {without} without groups"
        )


if __name__ == "__main__":
    main()
