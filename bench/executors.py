"""Start-to-running and crash-to-restart latency of each executor kind (issue 3).

Runs a Host in this process with one service per kind and reads the figures from the
engine's own events: `start` asked → `running`, and a crash (exit seen, `backoff`) → the
next `running`, with immediate backoff. Medians of N (default 50).

    uv run python bench/executors.py [-n 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import anyio

from tuisup.engine import Host, ServiceState
from tuisup.engine.events import StateChanged
from tuisup.spec import BackoffKind, ExecutorKind, HostSettings, Manifest, ServiceSpec

SOURCE = """
import tuisup

def idle(ctx):
    ctx.token.wait()

async def aidle(ctx):
    await ctx.token.wait_async()

def crash(ctx):
    raise RuntimeError("crash")

async def acrash(ctx):
    raise RuntimeError("crash")
"""

KINDS = [ExecutorKind.ASYNC, ExecutorKind.THREAD, ExecutorKind.PROCESS, ExecutorKind.ASYNC_PROCESS]


def spec(
    root: Path, name: str, attribute: str, kind: ExecutorKind, **options: object
) -> ServiceSpec:
    prefix = "a" if kind in (ExecutorKind.ASYNC, ExecutorKind.ASYNC_PROCESS) else ""
    target = f"bench_targets:{prefix}{attribute}"
    return ServiceSpec(
        name=name,
        argv=(),
        command=target,
        target=target,
        executor=kind,
        cwd=root,
        **options,  # type: ignore[arg-type]
    )


async def start_latency(root: Path, kind: ExecutorKind, n: int) -> list[float]:
    manifest = Manifest(
        path=root / "services.toml",
        settings=HostSettings(log_dir=None),
        services={"svc": spec(root, "svc", "idle", kind, autostart=False, stop_timeout=5.0)},
    )
    samples = []
    async with Host(manifest) as host:
        for _ in range(n):
            began = time.perf_counter()
            await host.start("svc")
            samples.append(time.perf_counter() - began)
            assert host.snapshot()["svc"].state is ServiceState.RUNNING
            await host.stop("svc")
    return samples


async def restart_latency(root: Path, kind: ExecutorKind, n: int) -> list[float]:
    options = {"backoff": BackoffKind.IMMEDIATE, "max_restarts": n + 5, "restart_window": 3600.0}
    manifest = Manifest(
        path=root / "services.toml",
        settings=HostSettings(log_dir=None),
        services={"svc": spec(root, "svc", "crash", kind, **options)},
    )
    samples: list[float] = []
    crashed: float | None = None
    async with Host(manifest) as host:
        with anyio.fail_after(120):
            async for batch in host.bus.stream(0):
                for event in batch:
                    if not isinstance(event, StateChanged):
                        continue
                    # Event times, not the reader's clock: an in-process restart emits
                    # `backoff` and `running` within one pass of the loop.
                    if event.state is ServiceState.BACKOFF:
                        crashed = event.ts
                    elif event.state is ServiceState.RUNNING and crashed is not None:
                        samples.append(event.ts - crashed)
                        crashed = None
                if len(samples) >= n:
                    break
    return samples


def ms(values: list[float]) -> str:
    q = statistics.quantiles(values, n=10)
    return f"{statistics.median(values) * 1000:8.2f} {q[-1] * 1000:8.2f}"


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "bench_targets.py").write_text(textwrap.dedent(SOURCE))
        print(f"executor latency, n = {n}, Python {sys.version.split()[0]}")
        print(f"{'executor':15} {'start→running ms':>18} {'crash→running ms':>18}")
        print(f"{'':15} {'median':>8} {'p90':>8}   {'median':>8} {'p90':>8}")
        for kind in KINDS:
            started = await start_latency(root, kind, n)
            restarted = await restart_latency(root, kind, n)
            print(f"{kind.value:15} {ms(started)}   {ms(restarted)}")
        print("start: Host.start() called → it returned with the service running (a child-process")
        print("kind is running once its target is imported); crash: the exit seen → running again.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=50)
    anyio.run(main, parser.parse_args().n)
