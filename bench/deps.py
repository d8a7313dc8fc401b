"""Dependency gating latency and the cost of health checks (issue 6).

1. Readiness: N pairs of `db` (opens its port after a random 0.2-1.0 s, and prints the time
   it did) and `api` with `depends_on = { db = "healthy" }` and a TCP health check on db.
   Latency is api `running` minus the moment db's port opened. Also `completed`: a job that
   exits 0, then its dependent `running`.
2. Cost: 100 running services, each with a health check every second (TCP to one shared
   listener, HTTP to one shared server, or the command `true`), measured as the CPU that
   tuisup and its check processes use over 10 s once every service is healthy.

    uv run python bench/deps.py [-n 20]
"""

from __future__ import annotations

import argparse
import random
import resource
import shlex
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from tuisup.engine import Host, ServiceState
from tuisup.engine.events import Output, StateChanged
from tuisup.spec import (
    Condition,
    HealthCheck,
    HealthKind,
    HostSettings,
    Manifest,
    RestartPolicy,
    ServiceSpec,
)

S = ServiceState
PY = shlex.quote(sys.executable)
LISTEN_LATER = (
    "import socket, sys, time; time.sleep(float(sys.argv[1])); s = socket.socket(); "
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
    "s.bind(('127.0.0.1', int(sys.argv[2]))); s.listen(64); "
    "print(repr(time.time()), flush=True); time.sleep(600)"
)
HTTP_SERVER = "-m http.server {port} --bind 127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spec(root: Path, name: str, command: str, **options: Any) -> ServiceSpec:
    return ServiceSpec(
        name=name, argv=("/bin/sh", "-c", command), command=command, cwd=root, **options
    )


def manifest(root: Path, specs: list[ServiceSpec]) -> Manifest:
    settings = HostSettings(log_dir=None)
    return Manifest(
        path=root / "services.toml", settings=settings, services={s.name: s for s in specs}
    )


def tcp_check(port: int, interval: float = 5.0) -> HealthCheck:
    return HealthCheck(
        kind=HealthKind.TCP, target=f"127.0.0.1:{port}", port=port, interval=interval
    )


async def readiness(root: Path, pairs: int) -> tuple[list[float], list[float]]:
    specs: list[ServiceSpec] = []
    for i in range(pairs):
        port, delay = free_port(), random.uniform(0.2, 1.0)
        command = f"exec {PY} -c {shlex.quote(LISTEN_LATER)} {delay:.3f} {port}"
        specs.append(spec(root, f"db{i}", command, healthcheck=tcp_check(port)))
        specs.append(
            spec(root, f"api{i}", "exec sleep 600", depends_on={f"db{i}": Condition.HEALTHY})
        )
        specs.append(spec(root, f"job{i}", f"sleep {delay:.3f}", restart=RestartPolicy.NEVER))
        specs.append(
            spec(root, f"web{i}", "exec sleep 600", depends_on={f"job{i}": Condition.COMPLETED})
        )
    healthy: list[float] = []
    completed: list[float] = []
    async with Host(manifest(root, specs)) as host:
        names = [s.name for s in specs if s.name.startswith(("api", "web"))]
        with anyio.fail_after(30):
            while any(host.snapshot()[n].state is not S.RUNNING for n in names):
                await anyio.sleep(0.05)
        events = list(host.bus.since(0))
        for i in range(pairs):
            opened = float(host.store.since(f"db{i}", 0)[0].lines[0])
            running = _first(events, f"api{i}", S.RUNNING)
            healthy.append(running - opened)
            completed.append(
                _first(events, f"web{i}", S.RUNNING) - _first(events, f"job{i}", S.EXITED)
            )
        assert any(isinstance(e, Output) for e in events)
    return healthy, completed


def _first(events: list[Any], name: str, state: S) -> float:
    return next(
        e.ts
        for e in events
        if isinstance(e, StateChanged) and e.service == name and e.state is state
    )


async def cost(root: Path, kind: str, services: int = 100, seconds: float = 10.0) -> float:
    port = free_port()
    specs: list[ServiceSpec] = []
    # One server that accepts every connection, for the TCP and HTTP checks alike.
    specs.append(spec(root, "target", f"exec {PY} {HTTP_SERVER.format(port=port)}"))
    for i in range(services):
        if kind == "tcp":
            check = tcp_check(port, interval=1.0)
        elif kind == "http":
            url = f"http://127.0.0.1:{port}/"
            check = HealthCheck(kind=HealthKind.HTTP, target=url, port=port, interval=1.0)
        else:
            check = HealthCheck(
                kind=HealthKind.COMMAND, target="true", argv=("true",), interval=1.0
            )
        specs.append(spec(root, f"s{i}", "exec sleep 600", healthcheck=check))
    async with Host(manifest(root, specs)) as host:
        with anyio.fail_after(60):
            while any(
                st.health is None or st.health.value != "healthy"
                for name, st in host.snapshot().items()
                if name != "target"
            ):
                await anyio.sleep(0.1)
        await anyio.sleep(1.0)  # every monitor is on its steady interval now
        before = _cpu()
        start = time.monotonic()
        await anyio.sleep(seconds)
        used = _cpu() - before
        elapsed = time.monotonic() - start
        await host.shutdown()
    return 100 * used / elapsed


def _cpu() -> float:
    """CPU seconds of this process and of its reaped children (the check commands)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


async def main(pairs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        healthy, completed = await readiness(root, pairs)
        print(f"readiness, {pairs} pairs (median / max, ms):")
        print(
            f"  port open → dependent running (healthy, tcp): "
            f"{statistics.median(healthy) * 1000:.0f} / {max(healthy) * 1000:.0f}"
        )
        print(
            f"  job exited 0 → dependent running (completed): "
            f"{statistics.median(completed) * 1000:.1f} / {max(completed) * 1000:.1f}"
        )
        print("health-check cost, 100 services checked every 1 s (% of one core, incl. checks):")
        for kind in ("tcp", "http", "command"):
            print(f"  {kind:<8} {await cost(root, kind):.1f}%")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=20, help="dependency pairs (default 20)")
    anyio.run(main, parser.parse_args().n)
