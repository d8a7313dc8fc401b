"""Regenerate screenshots/*.svg from the real console on the demo services.toml.

    uv run just screenshots        (or: uv run python screenshots/take.py [--png])

A scripted Pilot run: the dependency chain waiting at start, the main view, the merged log
view, a service in backoff with its countdown, a search with its filter, and two services'
details. With --png, each SVG is also
turned into a PNG (needs cairosvg and the Fira Code font: apt-get install fonts-firacode).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

import anyio
from rich.text import Text

from tuisup.engine import Host, ServiceState
from tuisup.manifest import load_manifest
from tuisup.tui.app import TuisupApp
from tuisup.tui.widgets.log_view import LogView
from tuisup.tui.widgets.service_tree import ServiceTree

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIZE = (140, 40)


async def until(pilot: object, check: Callable[[], bool], timeout: float = 30.0) -> None:
    with anyio.fail_after(timeout):
        while not check():
            await pilot.pause(0.1)  # type: ignore[attr-defined]


def crunching(app: TuisupApp) -> bool:
    """Whether the cruncher's process row shows it in a burst (CPU over 50%)."""
    rows = app.query_one(ServiceTree).nodes_by_name["crunch"].children
    return bool(rows) and float(str(rows[0].label).split()[1].rstrip("%")) > 50


async def select(pilot: object, app: TuisupApp, name: str) -> None:
    tree = app.query_one(ServiceTree)
    tree.move_cursor(tree.nodes_by_name[name])
    await until(pilot, lambda: app.query_one(LogView).source == name)


async def take() -> list[Path]:
    os.chdir(ROOT)
    host = Host(load_manifest("services.toml"))
    shots: list[Path] = []

    def save(app: TuisupApp, name: str) -> None:
        shots.append(Path(app.save_screenshot(f"{name}.svg", path=str(HERE))))

    async with host:
        app = TuisupApp(host)
        async with app.run_test(size=SIZE) as pilot:
            # The root is the checkout's folder: as a clone of the project would name it.
            app.query_one(ServiceTree).root.set_label(Text("tuisup", "bold"))
            waiting = lambda: host.snapshot()["api"].state is ServiceState.WAITING  # noqa: E731
            await until(pilot, waiting)
            save(app, "waiting")
            crunch = lambda: "hashes/s" in " ".join(app.query_one(LogView).visible_text())  # noqa: E731
            await until(pilot, crunch)
            save(app, "merged")
            await select(pilot, app, "web")
            await until(pilot, lambda: crunching(app))
            save(app, "main")
            await select(pilot, app, "flaky")
            await until(pilot, lambda: host.snapshot()["flaky"].state is ServiceState.BACKOFF)
            await pilot.pause(0.6)
            save(app, "backoff")
            await select(pilot, app, "chatty")
            await until(pilot, lambda: len(app.query_one(LogView).visible_text()) > 12)
            await pilot.press("slash", *"/warning|tick 1/", "enter", "F")
            await pilot.pause(0.3)
            save(app, "search")
            await pilot.press("F")
            await select(pilot, app, "moody")
            await pilot.press("enter")
            await pilot.pause(0.3)
            save(app, "detail")
            await pilot.press("escape")
            healthy = lambda: host.snapshot()["api"].health is not None  # noqa: E731
            await until(
                pilot, lambda: healthy() and host.snapshot()["api"].health.value == "healthy"
            )
            await select(pilot, app, "api")
            await pilot.press("enter")
            await pilot.pause(0.3)
            save(app, "dependencies")
            await pilot.press("escape", "slash", "ctrl+u", "enter")  # the search, undone
            await select(pilot, app, "echo.1")
            await pilot.press("minus", "minus")  # the node stays, for + to run one again
            tree = app.query_one(ServiceTree)
            await until(pilot, lambda: "0/0 running" in str(tree.parents["echo"].label))
            await pilot.pause(0.3)
            save(app, "scaled")
            await pilot.press("q")
            await until(pilot, lambda: not app.is_running)
    return shots


def to_png(svg: Path) -> Path:
    import cairosvg  # type: ignore[import-not-found]

    png = svg.with_suffix(".png")
    cairosvg.svg2png(url=str(svg), write_to=str(png), output_width=1600)
    return png


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--png", action="store_true", help="also write PNGs")
    options = parser.parse_args()
    for shot in anyio.run(take):
        print(shot.relative_to(ROOT))
        if options.png:
            print(to_png(shot).relative_to(ROOT))
