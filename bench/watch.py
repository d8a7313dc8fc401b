"""Hot reload (issue 5): file write → new process running, a burst → one restart, idle cost.

Runs a Host in this process with a `command` service that watches `src/`:

1. write a file, time until the service's new process is running (median of N), with the
   default 200 ms debounce;
2. write 1,000 files in a burst: how many restarts follow (must be 1);
3. the process's CPU over 10 s while the watcher has nothing to do.

    uv run python bench/watch.py [-n 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import anyio
import psutil

from tuisup.engine import Host, ServiceState
from tuisup.engine.events import FilesChanged, StateChanged
from tuisup.spec import HostSettings, Manifest, ServiceSpec


async def running_again(host: Host, after: int) -> float:
    """Wait for the next `running` after seq `after`; return when it happened (perf time)."""
    with anyio.fail_after(10):
        async for batch in host.bus.stream(after):
            for event in batch:
                if isinstance(event, StateChanged) and event.state is ServiceState.RUNNING:
                    return time.perf_counter()
    raise AssertionError("unreachable")


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "src").mkdir()
        spec = ServiceSpec(
            name="web", argv=("sleep", "600"), command="sleep 600", cwd=root, watch=("src/",)
        )
        manifest = Manifest(
            path=root / "services.toml",
            settings=HostSettings(log_dir=root / "logs"),
            services={"web": spec},
        )
        async with Host(manifest) as host:
            await anyio.sleep(1.0)  # the watcher starts in a thread after the services
            samples = []
            for i in range(n):
                after = host.bus.last_seq
                began = time.perf_counter()
                (root / "src" / "app.py").write_text(f"version = {i}\n")
                samples.append(await running_again(host, after) - began)
                await anyio.sleep(1.1)  # as a person saves: not within a second of a start
            print(
                f"write → running: median {statistics.median(samples) * 1000:.0f} ms, "
                f"max {max(samples) * 1000:.0f} ms over {n} (target < 300 ms, debounce 200 ms)"
            )

            restarts = host.snapshot()["web"].restarts
            after = host.bus.last_seq
            for i in range(1000):
                (root / "src" / f"m{i}.py").write_text(str(i))
            await running_again(host, after)
            await anyio.sleep(1.0)  # any second restart would come within a debounce
            burst = [e for e in host.bus.since(after) if isinstance(e, FilesChanged)]
            print(
                f"1,000 files in a burst: {host.snapshot()['web'].restarts - restarts} restart "
                f"({len(burst[0].paths) if burst else 0} paths in it) (target: exactly 1)"
            )

            process = psutil.Process()
            before, began = process.cpu_times(), time.perf_counter()
            await anyio.sleep(10)
            after_cpu = process.cpu_times()
            used = (after_cpu.user - before.user) + (after_cpu.system - before.system)
            print(
                f"idle with the watcher running: {used / (time.perf_counter() - began) * 100:.2f}% "
                "of one core over 10 s"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=20)
    anyio.run(main, parser.parse_args().n)
