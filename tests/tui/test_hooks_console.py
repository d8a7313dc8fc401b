"""Hooks in the console, over a real Host driven with Pilot: their runs in the service's log,
and the detail screen listing them."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import wait_until
from tests.tui.test_console import console, until
from tuisup.engine import ServiceState
from tuisup.spec import Hook, HookEvent, Manifest
from tuisup.tui.screens.detail import DetailScreen
from tuisup.tui.widgets.log_view import LogView


def sh(text: str) -> Hook:
    return Hook(argv=("/bin/sh", "-c", text), command=text)


async def test_a_hooks_run_shows_in_the_services_log_and_the_detail_lists_its_hooks(
    make_manifest: Callable[..., Manifest],
) -> None:
    hooks = {
        HookEvent.STARTED: sh("echo hello from the hook; exit 2"),
        HookEvent.EXITED: sh("echo $TUISUP_EXIT_CODE >> exits.txt"),
    }
    manifest = make_manifest(svc=("exec sleep 60", {"hooks": hooks, "hook_timeout": 3.0}))
    async with console(manifest) as (host, app, pilot):
        await wait_until(host, lambda s: s["svc"].state is ServiceState.RUNNING)
        await pilot.press("down")
        view = app.query_one(LogView)
        await until(pilot, lambda: "hello from the hook" in view.visible_text())
        await until(
            pilot,
            lambda: any(
                line.startswith('tuisup: hook "started" failed with code 2')
                for line in view.visible_text()
            ),
        )
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        picture = app.export_screenshot().replace("&#160;", " ")  # SVG text, spaces kept
        assert "hooks" in picture
        assert "started: echo hello from the hook; exit 2" in picture
        assert "exited: echo $TUISUP_EXIT_CODE &gt;&gt; exits.txt" in picture
        assert "killed after 3s" in picture
