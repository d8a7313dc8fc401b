"""What a newcomer sees at the console's usual sizes: the tree's rows, the footer's keys."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from tests.tui.test_escapes import manifest, on_screen, shell, until
from tuisup.engine import Host, ServiceState
from tuisup.spec import ExecutorKind, RestartPolicy, ServiceSpec
from tuisup.tui.app import TuisupApp
from tuisup.tui.widgets.log_view import LogView
from tuisup.tui.widgets.service_tree import ServiceTree

S = ServiceState


def row_of(app: TuisupApp, name: str) -> str:
    """The tree's row of a service, as on screen (the log pane's half cut off)."""
    width = app.query_one(ServiceTree).region.right
    rows = [row[:width] for row in on_screen(app).splitlines()]
    return next(row for row in rows if re.search(rf"\W{name} ", row))


@pytest.mark.parametrize("size", [(120, 32), (140, 40)])
async def test_a_backoff_countdown_fits_the_tree_at_the_usual_sizes(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    specs = (
        shell(tmp_path, "migrate", "exec sleep 60"),  # the demo's longest names: 7 letters
        shell(tmp_path, "flaky", "exit 3", backoff_delay=5.0, jitter=0.0),
    )
    async with Host(manifest(tmp_path, *specs)) as host:
        app = TuisupApp(host)
        async with app.run_test(size=size) as pilot:
            tree = app.query_one(ServiceTree)
            node = tree.nodes_by_name["flaky"]
            await until(pilot, lambda: "restart in" in str(node.label))
            assert host.snapshot()["flaky"].state is S.BACKOFF
            row = row_of(app, "flaky")
            assert re.search(r"restart in \d\.\ds · code 3", row), row


async def test_a_backoff_countdown_stays_readable_after_a_long_exception(tmp_path: Path) -> None:
    module = f"moody_{uuid.uuid4().hex[:8]}"
    message = "moody gave up at step 3 because the upstream answered something odd"
    (tmp_path / f"{module}.py").write_text(f"def run(ctx):\n    raise RuntimeError({message!r})\n")
    target = f"{module}:run"
    spec = ServiceSpec(
        name="moody",
        argv=(),
        command=target,
        target=target,
        executor=ExecutorKind.THREAD,
        cwd=tmp_path,
        backoff_delay=5.0,
        jitter=0.0,
    )
    async with Host(manifest(tmp_path, spec)) as host:
        app = TuisupApp(host)
        async with app.run_test(size=(120, 32)) as pilot:
            node = app.query_one(ServiceTree).nodes_by_name["moody"]
            await until(pilot, lambda: "restart in" in str(node.label))
            row = row_of(app, "moody")
            assert re.search(r"restart in \d\.\ds · RuntimeError", row), row


async def test_state_columns_line_up_with_and_without_process_rows(tmp_path: Path) -> None:
    specs = (
        shell(tmp_path, "web", "exec sleep 60"),
        shell(tmp_path, "greeter", "echo hello", restart=RestartPolicy.NEVER),
    )
    async with Host(manifest(tmp_path, *specs)) as host:
        app = TuisupApp(host)
        async with app.run_test(size=(120, 32)) as pilot:
            nodes = app.query_one(ServiceTree).nodes_by_name
            await until(pilot, lambda: bool(nodes["web"].children))
            await until(pilot, lambda: "exited" in str(nodes["greeter"].label))
            web, greeter = row_of(app, "web"), row_of(app, "greeter")
            assert web.index("web") == greeter.index("greeter"), (web, greeter)
            assert web.index("running") == greeter.index("exited"), (web, greeter)


@pytest.mark.parametrize("size", [(120, 32), (140, 40)])
async def test_every_key_in_the_footer_fits_quit_included(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    async with Host(manifest(tmp_path, shell(tmp_path, "web", "exec sleep 60"))) as host:
        app = TuisupApp(host)
        async with app.run_test(size=size):
            footer = on_screen(app).splitlines()[-1]
            for key in ("s Start", "x Stop", "a All logs", "/ Search", "? Help", "q Quit"):
                assert key in footer, footer


async def test_no_sideways_scrollbar_under_lines_that_fit(tmp_path: Path) -> None:
    line = "Serving HTTP on 127.0.0.1 port 8765 (http://127.0.0.1:8765/) ..."
    spec = shell(tmp_path, "web", f"echo '{line}'; exec sleep 60")
    async with Host(manifest(tmp_path, spec)) as host:
        app = TuisupApp(host)
        async with app.run_test(size=(140, 40)) as pilot:
            view = app.query_one(LogView)
            for source in (None, "web"):  # merged, with names before the lines, and alone
                view.switch(source)
                await until(
                    pilot, lambda: view.visible_text()[-1:] and line in view.visible_text()[-1]
                )
                await pilot.pause()
                assert not view.show_horizontal_scrollbar, view.virtual_size
