"""How soon a Python service's `ctx.events` sees an event (issue 13), in each executor.

A Host serves its control socket in this process, as `tuisup` runs one. Four subscribers,
one per executor (`async` and `thread` inside tuisup; `process` and `async-process` in
child interpreters, which reach the host through `TUISUP_SOCKET`), follow two services and
time each event from its `ts` (when tuisup emitted it) to when their loop got it; they
print p50, p99 and max per kind of event when stopped. The host's own subscription (what
the console and the printer use) is timed too: the floor.

1. `output`: `src` prints a line every 10 ms for `--seconds`.
2. `state`: `blink` exits at once and is restarted every `--period` seconds for
   `--seconds`: each `starting` is followed by a spawn on tuisup's loop, which holds
   every subscriber up alike (see the floor).

    uv run python bench/subscribers.py [--seconds 10] [--period 0.02] [--only async ...]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio

from tuisup.control.paths import SocketPath
from tuisup.control.server import ControlServer
from tuisup.engine import Host, ServiceState
from tuisup.engine.events import Output, StateChanged
from tuisup.link import SOCKET_ENV
from tuisup.spec import (
    BackoffKind,
    ExecutorKind,
    HostSettings,
    Manifest,
    RestartPolicy,
    ServiceSpec,
)

SUBSCRIBER = """
import json, time

SERVICES = ["blink", "src"]

def summary(delays, name):
    for kind in ("output", "state"):
        of = sorted(d for k, d in delays if k == kind)
        if not of:
            continue
        pick = lambda q: round(of[min(len(of) - 1, int(q * len(of)))] * 1000, 3)
        print("RESULT " + json.dumps(
            {"name": name, "events": kind, "n": len(of), "p50": pick(0.5), "p99": pick(0.99),
             "max": round(of[-1] * 1000, 3)}), flush=True)

def follow(ctx):
    delays = []
    for ev in ctx.events(services=SERVICES, kinds=["state", "output"], buffer=100_000):
        if ev.kind in ("state", "output"):
            delays.append((ev.kind, time.time() - ev.ts))
    summary(delays, ctx.name)

async def afollow(ctx):
    delays = []
    async for ev in ctx.events(services=SERVICES, kinds=["state", "output"], buffer=100_000):
        if ev.kind in ("state", "output"):
            delays.append((ev.kind, time.time() - ev.ts))
    summary(delays, ctx.name)
"""

KINDS = {
    "async": (ExecutorKind.ASYNC, "afollow"),
    "thread": (ExecutorKind.THREAD, "follow"),
    "process": (ExecutorKind.PROCESS, "follow"),
    "async-process": (ExecutorKind.ASYNC_PROCESS, "afollow"),
}
PRINTER = """
import sys, time
for i in range(int(sys.argv[1])):
    print(i, flush=True)
    time.sleep(0.01)
"""


def manifest(folder: Path, period: float, seconds: float, kinds: list[str]) -> Manifest:
    (folder / "subscriber.py").write_text(textwrap.dedent(SUBSCRIBER))
    (folder / "printer.py").write_text(PRINTER)
    lines = str(int(seconds * 100))
    services = {
        "src": ServiceSpec(
            name="src",
            argv=(sys.executable, "printer.py", lines),
            command="printer.py",
            cwd=folder,
            autostart=False,
            restart=RestartPolicy.NEVER,
        ),
        "blink": ServiceSpec(
            name="blink",
            argv=("/bin/true",),
            command="/bin/true",
            cwd=folder,
            autostart=False,
            restart=RestartPolicy.ALWAYS,
            backoff=BackoffKind.FIXED,
            backoff_delay=period,
            jitter=0.0,
            max_restarts=10**9,
            restart_window=1.0,
        ),
    }
    for name in kinds:
        executor, attribute = KINDS[name]
        services[name] = ServiceSpec(
            name=name,
            argv=(),
            command=f"subscriber:{attribute}",
            target=f"subscriber:{attribute}",
            executor=executor,
            cwd=folder,
        )
    return Manifest(
        path=folder / "services.toml", settings=HostSettings(log_dir=None), services=services
    )


def results(host: Host, kinds: list[str]) -> list[dict[str, Any]]:
    return [
        json.loads(line.removeprefix("RESULT "))
        for name in kinds
        for batch in host.store.since(name, 0)
        for line in batch.lines
        if line.startswith("RESULT ")
    ]


async def bench(seconds: float, period: float, kinds: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="tsb-", dir="/tmp") as tmp:
        folder = Path(tmp)
        host = Host(manifest(folder, period, seconds, kinds), watch=False)
        server = ControlServer(host, SocketPath(path=folder / "s.sock"))
        server.bind()
        host.env[SOCKET_ENV] = str(folder / "s.sock")
        floor: dict[str, list[float]] = {}
        async with server, host:
            with anyio.fail_after(30):
                while any(host.snapshot()[n].state is not ServiceState.RUNNING for n in kinds):
                    await anyio.sleep(0.05)
            await anyio.sleep(0.5)  # every subscriber has its snapshot
            async with anyio.create_task_group() as tg:
                tg.start_soon(follow_here, host, floor)
                await host.start("src")
                while host.snapshot()["src"].state is not ServiceState.EXITED:
                    await anyio.sleep(0.1)
                await host.start("blink")
                await anyio.sleep(seconds)
                await host.stop("blink")
                tg.cancel_scope.cancel()
            for name in kinds:
                await host.stop(name)
            found = results(host, kinds)
    for kind, what in (
        ("output", "a line printed every 10 ms"),
        ("state", f"a service restarted every {period * 1000:g} ms"),
    ):
        print(f"{kind} events ({what}) → the subscriber's loop:")
        print(f"  {'the host itself (floor)':<24} {summary(sorted(floor.get(kind, [])))}")
        for row in found:
            if row["events"] == kind:
                print(
                    f"  {row['name']:<24} {row['n']:>6} events  p50 {row['p50']:.3f} ms  "
                    f"p99 {row['p99']:.3f} ms  max {row['max']:.3f} ms"
                )
    if len(found) != 2 * len(kinds):
        sys.exit(f"only {len(found)} of {2 * len(kinds)} results came")


async def follow_here(host: Host, floor: dict[str, list[float]]) -> None:
    """The host's own subscription (the console's and the printer's)."""
    async for batch in await host.subscribe():
        now = time.time()
        for event in batch:
            if isinstance(event, (StateChanged, Output)) and event.service in ("src", "blink"):
                floor.setdefault(event.kind, []).append(now - event.ts)


def summary(delays: list[float]) -> str:
    if not delays:
        return "no events"

    def pick(q: float) -> float:
        return delays[min(len(delays) - 1, int(q * len(delays)))] * 1000

    return (
        f"{len(delays):>6} events  p50 {pick(0.5):.3f} ms  p99 {pick(0.99):.3f} ms  "
        f"max {delays[-1] * 1000:.3f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--period", type=float, default=0.02)
    parser.add_argument(
        "--only", nargs="+", choices=list(KINDS), default=list(KINDS), help="these subscribers"
    )
    options = parser.parse_args()
    gc.freeze()  # as `tuisup` does once its modules are imported (`tuisup.cli`)
    anyio.run(bench, options.seconds, options.period, options.only)


if __name__ == "__main__":
    main()
