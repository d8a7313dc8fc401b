"""Provides the measurements of issue 15: rotation and timestamps, a steady flood, a big scrape.

    uv run python bench/logs.py                    # all three
    uv run python bench/logs.py --only ingest      # ingest, flood or scrape

- ingest: 500,000 lines of 100 B from a process, through a Host, until every line is in the
  files: with timestamps on and rotation at 1 MiB, against both off. Then the rotated files,
  put together and their times taken off, are compared with what was written: lines lost,
  duplicated or split.
- flood: 50 MB/s into a service for 10 s, `log_max_bytes = 1 MiB` against no rotation:
  tuisup's CPU per MB, and its wake-ups (context switches of every thread) in the 2 s after.
- scrape: 500 services with metrics on: how long a scrape of `/metrics` takes, and the crash
  → running latency of a service, scraped every second or not.

Everything runs in this process (the Host, its reader, its files), so its CPU is tuisup's;
the services are real processes.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import anyio

from tuisup.engine import Host, ServiceState, Subscription
from tuisup.engine.events import Output, StateChanged
from tuisup.model.record import replace
from tuisup.spec import MIB, HostSettings, LogOptions, Manifest, ServiceSpec

S = ServiceState
LINES = 500_000
LINE = b"%08d " + b"x" * 90 + b"\n"
STAMP = re.compile(rb"^\S+ ", re.M)
WRITER = """\
import os, sys, time
data = open(sys.argv[1], "rb").read()
view = memoryview(data)
while view:
    view = view[os.write(1, view[: 1 << 20]):]
time.sleep(3600)
"""
PACED = """\
import os, sys, time
rate, seconds = float(sys.argv[1]), float(sys.argv[2])
line = b"%08d " % 0 + b"y" * 90 + b"\\n"
block = line * int(rate / 10 / len(line))  # a tenth of a second's worth
start = time.monotonic()
for tick in range(int(seconds * 10)):
    view = memoryview(block)
    while view:
        view = view[os.write(1, view):]
    time.sleep(max(0.0, start + (tick + 1) / 10 - time.monotonic()))
time.sleep(3600)
"""


def manifest(
    folder: Path, settings: HostSettings, **services: tuple[str, dict[str, object]]
) -> Manifest:
    specs = {
        name: ServiceSpec(
            name=name,
            argv=("/bin/sh", "-c", command),
            command=command,
            cwd=folder,
            shell=True,
            **options,  # type: ignore[arg-type]
        )
        for name, (command, options) in services.items()
    }
    return Manifest(path=folder / "services.toml", settings=settings, services=specs)


async def until_lines(
    subscription: Subscription, service: str, count: int, timeout: float = 120
) -> None:
    """Wait until `service` has written `count` lines (its output events say so)."""
    seen = 0
    with anyio.fail_after(timeout):
        async for batch in subscription:
            seen += sum(e.count for e in batch if isinstance(e, Output) and e.service == service)
            if seen >= count:
                return


def rotated(folder: Path, name: str) -> list[Path]:
    backups = sorted(folder.glob(f"{name}.log.*"), key=lambda p: int(p.suffix[1:]), reverse=True)
    return [*backups, folder / f"{name}.log"]


# -- ingest ---------------------------------------------------------------------------------


async def ingest_once(options: LogOptions) -> tuple[float, float, bytes, int]:
    """Seconds and CPU seconds of one ingest, what the files hold (times off), files made."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "lines").write_bytes(b"".join(LINE % i for i in range(LINES)))
        (folder / "writer.py").write_text(WRITER)
        settings = HostSettings(log_dir=folder / "logs")
        command = f"exec {sys.executable} writer.py lines"
        m = manifest(folder, settings, w=(command, {"logs": options}))
        host = Host(m)
        subscription = await host.subscribe()
        began, cpu = time.perf_counter(), time.process_time()
        async with host:
            await until_lines(subscription, "w", LINES)  # each is in the files by then
            took, cpu = time.perf_counter() - began, time.process_time() - cpu
        files = rotated(folder / "logs", "w")
        data = b"".join(path.read_bytes() for path in files)
    if options.timestamps:
        data = STAMP.sub(b"", data)
    return took, cpu, data, len(files)


async def ingest(runs: int) -> None:
    expected = [LINE % i for i in range(LINES)]
    shapes = {
        "both off": LogOptions(max_bytes=0, timestamps=False),
        "timestamps only": LogOptions(max_bytes=0),
        "rotation at 1 MiB only, 1000 backups": LogOptions(
            max_bytes=MIB, backups=1000, timestamps=False
        ),
        "both, 1000 backups (every line kept)": LogOptions(max_bytes=MIB, backups=1000),
        "both, 5 backups (the default)": LogOptions(max_bytes=MIB),
    }
    results: dict[str, list[tuple[float, float, bytes, int]]] = {name: [] for name in shapes}
    for _ in range(runs):  # in turns: a busy moment of the machine falls on every shape
        for name, options in shapes.items():
            results[name].append(await ingest_once(options))
    medians, fastest = {}, {}
    for name, options in shapes.items():
        took = statistics.median(r[0] for r in results[name])
        cpu = statistics.median(r[1] for r in results[name])
        medians[name], fastest[name] = took, min(r[0] for r in results[name])
        _, _, data, count = results[name][-1]
        lines = [line + b"\n" for line in data.split(b"\n") if line.startswith(b"0")]
        # The files hold the end of what was written, each line whole and once; every line
        # of it when nothing was rotated away.
        tail = expected[len(expected) - len(lines) :]
        wrong = sum(1 for got, wanted in zip(lines, tail, strict=True) if got != wanted)
        keeps_all = not options.max_bytes or options.backups >= count
        lost = LINES - len(lines) if keeps_all else 0
        kept = f"all {LINES:,} lines" if len(lines) == LINES else f"the last {len(lines):,} lines"
        print(  # noqa: T201
            f"ingest, {name:38} {took:.3f} s (fastest {fastest[name]:.3f} s, CPU {cpu:.3f} s), "
            f"{count} files, {kept}; "
            f"lost {lost}, duplicated, split or out of order {wrong}"
        )
    for name, took in medians.items():
        ratio, best = took / medians["both off"], fastest[name] / fastest["both off"]
        print(  # noqa: T201
            f"ingest, {name:38} {ratio:.2f}x the time of both off (fastest runs: {best:.2f}x)"
        )


# -- flood ----------------------------------------------------------------------------------


def switches() -> int:
    """Voluntary context switches of every thread of this process so far: its wake-ups.

    (A thread that blocks and is woken again switches once; preemption is not counted.)
    """
    total = 0
    for task in os.listdir("/proc/self/task"):
        try:
            text = Path(f"/proc/self/task/{task}/status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("voluntary_ctxt_switches"):
                total += int(line.split()[1])
    return total


async def flood_once(options: LogOptions, rate: float, seconds: float) -> tuple[float, int, int]:
    """CPU seconds per MB, wake-ups in 2 s of quiet after, log files made."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "paced.py").write_text(PACED)
        settings = HostSettings(log_dir=folder / "logs")
        command = f"exec {sys.executable} paced.py {rate} {seconds}"
        m = manifest(folder, settings, f=(command, {"logs": options}))
        line = 100
        count = int(rate / 10 / line) * int(seconds * 10)
        host = Host(m)
        subscription = await host.subscribe()
        cpu = time.process_time()
        async with host:
            await until_lines(subscription, "f", count)
            cpu = time.process_time() - cpu
            await anyio.sleep(0.5)  # the last lines' own work (the bus's readers) ends
            before = switches()
            await anyio.sleep(2.0)  # the service is quiet now: nothing should run
            woke = switches() - before - 1  # this sleep's own wake-up
            files = len(rotated(folder / "logs", "f"))
    return cpu / (count * line / 1e6), woke, files


async def flood(rate: float, seconds: float, rounds: int = 3) -> None:
    shapes = {
        "no rotation": LogOptions(max_bytes=0),
        "log_max_bytes = 1 MiB": LogOptions(max_bytes=MIB, backups=5),
    }
    results: dict[str, list[tuple[float, int, int]]] = {name: [] for name in shapes}
    for _ in range(rounds):  # in turns, as the ingest
        for name, options in shapes.items():
            results[name].append(await flood_once(options, rate, seconds))
    for name, runs in results.items():
        per_mb = statistics.median(r[0] for r in runs)
        woke = [r[1] for r in runs]
        print(  # noqa: T201
            f"flood {rate / 1e6:.0f} MB/s for {seconds:g} s, {name:22} "
            f"{per_mb * 1e3:.2f} ms CPU per MB (median of {rounds}), {runs[-1][2]} files; "
            f"wake-ups in the 2 s after: {woke}"
        )


# -- scrape ---------------------------------------------------------------------------------


def scrape(port: int) -> float:
    began = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        answer.read()
    return time.perf_counter() - began


async def restart_latency(host: Host, samples: int) -> list[float]:
    """Seconds from a SIGKILL of `crashy` to its next run being `running`, `samples` times."""
    took = []
    for _ in range(samples):
        pid = host.snapshot()["crashy"].pid
        assert pid is not None
        subscription = await host.subscribe()
        killed = time.time()
        os.kill(pid, signal.SIGKILL)
        with anyio.fail_after(10):
            async for batch in subscription:
                up = [
                    e
                    for e in batch
                    if isinstance(e, StateChanged)
                    and e.service == "crashy"
                    and e.state is S.RUNNING
                ]
                if up:
                    took.append(up[0].ts - killed)
                    break
        await anyio.sleep(0.2)
    return took


async def scrape_bench(services: int, port: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        settings = replace(HostSettings(log_dir=folder / "logs"), metrics=("127.0.0.1", port))
        crashy = {"restart": "always", "backoff": "immediate", "max_restarts": 1000}
        sleeps = {f"s{i}": (f"exec sleep {1_000_000 + i}", {}) for i in range(services - 1)}
        m = manifest(folder, settings, crashy=("exec sleep 999999", crashy), **sleeps)
        async with Host(m) as host:
            await wait_all_running(host)
            await anyio.to_thread.run_sync(scrape, port)  # the first asks for process statistics
            await anyio.sleep(1.5)
            times = [await anyio.to_thread.run_sync(scrape, port) for _ in range(20)]
            print(  # noqa: T201
                f"scrape of {services} services: median {statistics.median(times) * 1e3:.1f} ms, "
                f"max {max(times) * 1e3:.1f} ms"
            )
            quiet = await restart_latency(host, 30)
            stop = threading.Event()

            def every_second() -> None:
                while not stop.wait(1.0):
                    scrape(port)

            thread = threading.Thread(target=every_second, daemon=True)
            thread.start()
            try:
                scraped = await restart_latency(host, 30)
            finally:
                stop.set()
                thread.join()
        for name, took in (("not scraped", quiet), ("scraped every second", scraped)):
            took.sort()
            print(  # noqa: T201
                f"crash -> running, {name:21} median {statistics.median(took) * 1e3:.1f} ms, "
                f"p90 {took[int(len(took) * 0.9)] * 1e3:.1f} ms"
            )


async def wait_all_running(host: Host) -> None:
    subscription = await host.subscribe()
    with anyio.fail_after(120):
        if all(v.state is S.RUNNING for v in host.snapshot().values()):
            return
        async for _ in subscription:
            if all(v.state is S.RUNNING for v in host.snapshot().values()):
                return


def main() -> None:
    """Run the measurements asked for and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="ingest, flood or scrape (default: all)")
    parser.add_argument("--runs", type=int, default=3, help="ingest runs per shape (default 3)")
    parser.add_argument("--port", type=int, default=19464, help="the metrics port (scrape)")
    options = parser.parse_args()
    wanted = {options.only} if options.only else {"ingest", "flood", "scrape"}
    jobs: list[Callable[[], object]] = []
    if "ingest" in wanted:
        jobs.append(lambda: ingest(options.runs))
    if "flood" in wanted:
        jobs.append(lambda: flood(50e6, 10.0))
    if "scrape" in wanted:
        jobs.append(lambda: scrape_bench(500, options.port))
    for job in jobs:
        anyio.run(job)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
