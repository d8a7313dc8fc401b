"""The console under load (issue 4): key latency, idle CPU, view switching, memory.

Runs the real app headless (Textual's run_test) over a real Host in this process:

1. one service writes 50,000 lines/s for 10 s: p50/p99 of the event loop's lag (a 10 ms
   heartbeat, the proxy TEXTUAL.md uses for key latency), p99 of key press → action, and
   whether the service's kept log holds exactly its last lines (none lost in between);
   the same again with wrap on, with what each pull of new lines costs;
2. 20 idle services: the whole process's CPU over 10 s, as % of one core;
3. switching the log view to a service holding 10,000 lines: switch + drawing a screen;
   with wrap on: turning wrap on over 10,000 lines, and a resize, each with a screen drawn;
4. RSS before and after the flood: memory stays bounded.

    uv run python bench/console.py [--seconds 10] [--cases flood,wrap,idle]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
import psutil
from textual import events

from tuisup.engine import Host, ServiceState
from tuisup.spec import HostSettings, Manifest, RestartPolicy, ServiceSpec
from tuisup.tui.app import TuisupApp
from tuisup.tui.widgets.log_view import LogView
from tuisup.tui.widgets.service_tree import ServiceTree

WRITER = """
import sys, time
rate, seconds, pad = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
out = sys.stdout
n, start = 0, time.monotonic()
while (elapsed := time.monotonic() - start) < seconds:
    due = int(elapsed * rate)
    if n < due:
        out.write("".join(f"line {i:08d} " + "x" * pad + "\\n" for i in range(n, due)))
        out.flush()
        n = due
    time.sleep(0.002)
print(f"done {n}", flush=True)
"""


def service(root: Path, name: str, argv: tuple[str, ...], **options: object) -> ServiceSpec:
    return ServiceSpec(name=name, argv=argv, command=" ".join(argv), cwd=root, **options)  # type: ignore[arg-type]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


async def flood(root: Path, seconds: float, wrap: bool = False) -> None:
    (root / "writer.py").write_text(WRITER)
    pad = 160 if wrap else 60  # with wrap on, every line takes two rows of the pane
    argv = (sys.executable, "writer.py", "50000", str(seconds), str(pad))
    specs = {"flood": service(root, "flood", argv, restart=RestartPolicy.NEVER)}
    specs |= {f"idle{i}": service(root, f"idle{i}", ("sleep", "600")) for i in range(3)}
    manifest = Manifest(
        path=root / "services.toml", settings=HostSettings(log_dir=root / "logs"), services=specs
    )
    process = psutil.Process()
    async with Host(manifest) as host:
        app = TuisupApp(host)
        async with app.run_test(size=(160, 45)) as pilot:
            lags: list[float] = []
            expected = time.perf_counter() + 0.01

            def heartbeat() -> None:
                nonlocal expected
                now = time.perf_counter()
                lags.append(max(0.0, now - expected))
                expected = now + 0.01

            app.set_interval(0.01, heartbeat)
            keys: list[float] = []
            view = app.query_one(LogView)
            rss_before = process.memory_info().rss
            await pilot.press("down")  # select the flood's own log
            pulls = timed_pulls(view)
            if wrap:
                await pilot.press("w")
            with anyio.fail_after(seconds + 30):
                while host.snapshot()["flood"].state is not ServiceState.EXITED:
                    began = time.perf_counter()
                    flag = view.timestamps
                    # A key event as the terminal driver posts it (Pilot.press would wait
                    # for the app to go idle, which a flood never lets it).
                    app.post_message(events.Key("t", "t"))
                    while view.timestamps == flag:
                        await anyio.sleep(0.001)
                    keys.append(time.perf_counter() - began)
                    await anyio.sleep(0.1)
            await pilot.pause(0.3)
            rss_after = process.memory_info().rss
            lines = [line for b in host.store.since("flood", 0) for line in b.lines]
            total = int(lines[-1].split()[1])
            kept = lines[:-1]
            exact = kept == [f"line {i:08d} " + "x" * pad for i in range(total - len(kept), total)]
            title = "flood, wrap on" if wrap else "flood"
            print(f"{title}: {total:,} lines in {seconds:g}s ({total / seconds:,.0f}/s)")
            print(
                f"  loop lag p50 {statistics.median(lags) * 1000:.1f} ms, "
                f"p99 {percentile(lags, 0.99) * 1000:.1f} ms (target: key answered < 100 ms p99)"
            )
            print(
                f"  key press → action p50 {statistics.median(keys) * 1000:.1f} ms, "
                f"p99 {percentile(keys, 0.99) * 1000:.1f} ms over {len(keys)} presses"
            )
            print(f"  kept log: last {len(kept):,} lines, consecutive and intact: {exact}")
            print(
                f"  a pull of new lines: median {statistics.median(pulls) * 1000:.1f} ms, "
                f"max {max(pulls) * 1000:.1f} ms over {len(pulls)} pulls"
            )
            print(f"  RSS {rss_before / 2**20:.1f} → {rss_after / 2**20:.1f} MiB")
            await switch_time(pilot, app, view)
            if wrap:
                await wrap_time(pilot, app, view)
            await pilot.press("q")


def timed_pulls(view: LogView) -> list[float]:
    """Time every pull of new lines the view makes from now on."""
    times: list[float] = []
    pull = view.pull

    def timed() -> None:
        began = time.perf_counter()
        pull()
        times.append(time.perf_counter() - began)

    view.pull = timed  # type: ignore[method-assign]
    return times


def draw(view: LogView) -> None:
    for y in range(view.size.height):
        view.render_line(y)


async def wrap_time(pilot: object, app: TuisupApp, view: LogView) -> None:
    """Wrap on over a full view, and a resize with wrap on, each with a screen drawn."""
    view.switch("flood")
    await pilot.pause()  # type: ignore[attr-defined]
    toggles, resizes, rebuilds = [], [], []
    for _ in range(5):
        view.wrap = False
        await pilot.pause()  # type: ignore[attr-defined]
        began = time.perf_counter()
        view.wrap = True
        draw(view)
        toggles.append(time.perf_counter() - began)
    for width in (150, 160, 150, 160, 150):
        began = time.perf_counter()
        await pilot.resize_terminal(width, 45)  # type: ignore[attr-defined]
        draw(view)
        resizes.append(time.perf_counter() - began)
    for _ in range(5):  # what a resize or the filter costs the view itself
        began = time.perf_counter()
        view._rebuild()
        draw(view)
        rebuilds.append(time.perf_counter() - began)
    held = len(view._entries)
    print(
        f"  wrap on over {held:,} lines and draw a screen: median "
        f"{statistics.median(toggles) * 1000:.1f} ms; resize with wrap on: median "
        f"{statistics.median(resizes) * 1000:.1f} ms, of which the view's rebuild "
        f"{statistics.median(rebuilds) * 1000:.1f} ms"
    )


async def switch_time(pilot: object, app: TuisupApp, view: LogView) -> None:
    tree = app.query_one(ServiceTree)
    times = []
    held = 0
    for _ in range(10):
        tree.move_cursor(tree.nodes_by_name["idle0"])
        await pilot.pause()  # type: ignore[attr-defined]
        began = time.perf_counter()
        view.switch("flood")
        for y in range(view.size.height):
            view.render_line(y)
        times.append(time.perf_counter() - began)
        held = len(view._entries)
        view.switch("idle0")
    print(
        f"  switch to a service with {held:,} lines and draw a screen: "
        f"median {statistics.median(times) * 1000:.1f} ms (target < 50 ms)"
    )


async def idle(root: Path, seconds: float, warm: float) -> None:
    specs = {f"svc{i:02d}": service(root, f"svc{i:02d}", ("sleep", "600")) for i in range(20)}
    manifest = Manifest(
        path=root / "idle.toml", settings=HostSettings(log_dir=None), services=specs
    )
    process = psutil.Process()
    async with Host(manifest) as host:
        app = TuisupApp(host)
        async with app.run_test(size=(160, 45)) as pilot:
            # Past the first minute, when uptimes stop counting seconds: the steady state.
            await pilot.pause(warm)
            before = process.cpu_times()
            began = time.perf_counter()
            await anyio.sleep(seconds)
            after = process.cpu_times()
            used = (after.user - before.user) + (after.system - before.system)
            share = used / (time.perf_counter() - began) * 100
            print(
                f"idle: 20 services, console and host together {share:.2f}% of one core "
                f"over {seconds:g}s (target < 2%)"
            )
            await pilot.press("q")


async def main(seconds: float, warm: float, cases: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        if "flood" in cases:
            await flood(root, seconds)
        if "wrap" in cases:
            await flood(root, seconds, wrap=True)
        if "idle" in cases:
            await idle(root, seconds, warm)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warm", type=float, default=62.0, help="idle: seconds before measuring")
    parser.add_argument("--cases", default="flood,wrap,idle", help="which, comma-separated")
    options = parser.parse_args()
    anyio.run(main, options.seconds, options.warm, options.cases.split(","))
