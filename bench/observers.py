"""What services that observe one another cost (issue 13): listener services.

A Host runs in this process (so its RSS is this process's), with real processes around it:

- `src` prints lines at a set rate, one write each (busy-waiting between them);
- `deaf` is a listener of every event that never reads its stdin;
- `reader` is a listener of `src`'s output and state that reads every line and times each
  event from its `ts` (when tuisup emitted it) to when it read it, summing up at `src`'s exit;
- `crasher` exits 0.2 s after each start and is restarted at once: its exit → running time
  shows whether the rest of the host is held up.

1. Latency: `src` printing 200 lines/s for 5 s, then 10,000 lines/s (tuisup reads what has
   come at each turn of its loop, so the events are fewer than the lines): event → the
   reader's line, p50 and p99.
2. The burst: exactly 10,000 events/s for 10 s (lines added to `src`'s log as its reads
   would be, in ticks of 10 ms), with `deaf` running and then without it: the host's RSS
   growth (VmRSS, sampled every 50 ms, after the bus's ring and the kept logs were filled,
   as any long run has them), the events `deaf` lost (its `missed` count), the reader's
   latency, and the crasher's restart time.

    uv run python bench/observers.py [--rate 10000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio

from tuisup.engine import Host, ServiceState
from tuisup.engine.events import Output, StateChanged
from tuisup.spec import (
    BackoffKind,
    HostSettings,
    Listen,
    Manifest,
    RestartPolicy,
    ServiceSpec,
)

S = ServiceState

PRODUCER = """
import os, sys, time
rate, seconds = map(float, open("plan.txt").read().split())
count = int(rate * seconds)
start = time.perf_counter()
i = 0
while i < count:
    due = start + i / rate
    now = time.perf_counter()
    if now < due:
        if due - now > 0.002:
            time.sleep(due - now - 0.001)
        continue
    os.write(1, b"line %d\\n" % i)
    i += 1
"""

READER = """
import json, sys, time
delays = []
for line in sys.stdin:
    now = time.time()
    event = json.loads(line)
    if event["event"] == "output":
        delays.append(now - event["ts"])
    elif event["event"] == "state" and event["state"] == "exited":
        delays.sort()
        n = len(delays)
        pick = lambda q: round(delays[min(n - 1, int(q * n))] * 1000, 3) if n else None
        print(json.dumps({"n": n, "p50": pick(0.5), "p99": pick(0.99)}), flush=True)
        delays = []
"""


def rss() -> int:
    """This process's resident memory, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def manifest(folder: Path) -> Manifest:
    (folder / "producer.py").write_text(PRODUCER)
    (folder / "reader.py").write_text(READER)

    def spec(name: str, argv: tuple[str, ...], **options: Any) -> ServiceSpec:
        return ServiceSpec(name=name, argv=argv, command=" ".join(argv), cwd=folder, **options)

    python = sys.executable
    services = [
        spec("src", (python, "producer.py"), autostart=False, restart=RestartPolicy.NEVER),
        spec("deaf", ("sleep", "3600"), listen=Listen()),
        spec(
            "reader",
            (python, "-u", "reader.py"),
            listen=Listen(kinds=("output", "state"), services=("src",)),
        ),
        spec(
            "crasher",
            ("/bin/sh", "-c", "sleep 0.2; exit 1"),
            backoff=BackoffKind.IMMEDIATE,
            max_restarts=100_000,
        ),
    ]
    settings = HostSettings(log_dir=None)
    return Manifest(
        path=folder / "services.toml", settings=settings, services={s.name: s for s in services}
    )


class Restarts:
    """The crasher's exit → running times, from the bus."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._exited = 0.0

    def see(self, event: object) -> None:
        if isinstance(event, StateChanged) and event.service == "crasher":
            if event.state is S.BACKOFF:
                self._exited = event.ts
            elif event.state is S.RUNNING and self._exited:
                self.times.append(event.ts - self._exited)


async def run_src(host: Host, rate: float, seconds: float) -> dict[str, Any]:
    """Run the `src` process once at `rate` lines a second; return what the reader saw."""
    (host.manifest.root / "plan.txt").write_text(f"{rate} {seconds}")
    first = host.bus.last_seq
    await host.start("src")
    began = anyio.current_time()
    while host.supervisors["src"].state is not S.EXITED:
        await anyio.sleep(0.05)
    took = anyio.current_time() - began
    events = sum(isinstance(e, Output) and e.service == "src" for e in host.bus.since(first))
    return {"rate": events / took, "reader": await reader_said(host, first)}


async def reader_said(host: Host, after: int) -> dict[str, Any]:
    """The reader's summary of `src`'s run that ended after seq `after`."""
    while True:
        for event in host.bus.since(after):
            if isinstance(event, Output) and event.service == "reader":
                [said] = host.lines_inline([event])
                assert isinstance(said, Output) and said.lines
                return dict(json.loads(said.lines[-1]))
        after = host.bus.last_seq
        await host.bus.wait_after(after)


async def burst(host: Host, rate: float, seconds: float) -> dict[str, Any]:
    """`src` "prints" `rate` lines a second for `seconds`, each line one `output` event.

    The lines go through the host's log store and bus as a process's reads do, added here
    in ticks of 10 ms so that the rate is exact (a real producer's lines come in fewer,
    bigger reads once the host is busy: see `run_src`). Returns the RSS growth and what the
    reader saw.
    """
    gc.collect()
    before = most = rss()
    first = host.bus.last_seq
    per_tick = max(1, int(rate / 100))
    count = int(rate * seconds)
    start = anyio.current_time()
    for tick in range(0, count, per_tick):
        for i in range(tick, min(count, tick + per_tick)):
            host.store.add("src", "stdout", [f"line {i}"])
        await anyio.sleep_until(start + (tick + per_tick) / rate)
        if tick % (per_tick * 5) == 0:
            most = max(most, rss())
    took = anyio.current_time() - start
    growth = max(most, rss()) - before
    await run_src(host, 1, 0)  # a run of no line: its exit has the reader sum up
    return {"growth": growth, "rate": count / took, "reader": await reader_said(host, first)}


def deaf_missed(host: Host) -> int:
    """How many events the deaf listener's feeder dropped since it last said so."""
    return sum(f.missed for f in host.listeners.live if f.name == "deaf")


async def bench(rate: float, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        host = Host(manifest(Path(tmp)), watch=False)
        restarts = Restarts()
        async with host, anyio.create_task_group() as tg:
            subscription = await host.subscribe()

            async def follow() -> None:
                async for batch in subscription:
                    for event in batch:
                        restarts.see(event)

            tg.start_soon(follow)
            while host.snapshot()["reader"].state is not S.RUNNING:
                await anyio.sleep(0.05)
            calm = await run_src(host, 200, 5)
            print(
                f"calm, a process printing 200 lines/s: event → reader's line "
                f"p50 {calm['reader']['p50']} ms, p99 {calm['reader']['p99']} ms"
            )
            real = await run_src(host, rate, 5)
            print(
                f"a process printing {rate:,.0f} lines/s: {real['rate']:,.0f} events/s; "
                f"event → reader's line p50 {real['reader']['p50']} ms, "
                f"p99 {real['reader']['p99']} ms"
            )
            # Fill the bus's ring and the kept logs first, as any long run has: what they
            # keep is the host's, whoever listens.
            await burst(host, 100_000, host.bus.capacity / 100_000 + 0.5)
            for label in ("with a listener that never reads", "without it"):
                if label == "without it":
                    await host.stop("deaf")
                missed = deaf_missed(host)
                mark = len(restarts.times)
                done = await burst(host, rate, seconds)
                during = [t * 1000 for t in restarts.times[mark:]]
                print(
                    f"{done['rate']:,.0f} events/s for {seconds:g} s {label}: host RSS growth "
                    f"{done['growth'] / 2**20:.2f} MiB; reader p50 {done['reader']['p50']} ms"
                    f", p99 {done['reader']['p99']} ms; crasher exit → running p50 "
                    f"{statistics.median(during):.2f} ms, max {max(during):.2f} ms "
                    f"({len(during)} restarts)"
                )
                if label != "without it":
                    print(f"  the deaf listener lost {deaf_missed(host) - missed:,} events")
            tg.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--seconds", type=float, default=10)
    options = parser.parse_args()
    anyio.run(bench, options.rate, options.seconds)


if __name__ == "__main__":
    main()
