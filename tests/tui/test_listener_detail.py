"""The detail screen of a listener says what its stdin receives, over a real Host."""

from __future__ import annotations

import io
from collections.abc import Callable

from rich.console import Console

from tests.tui.test_console import console, until
from tuisup.spec import Listen, Manifest
from tuisup.tui.screens.detail import DetailScreen, describe


def text_of(table: object) -> str:
    out = Console(width=200, record=True, file=io.StringIO())
    out.print(table)
    return out.export_text()


async def test_the_detail_of_a_listener_lists_its_listen_settings(
    make_manifest: Callable[..., Manifest],
) -> None:
    listen = Listen(kinds=("state", "health"), services=("api", "alerts"))
    manifest = make_manifest(
        api="exec sleep 60",
        alerts=("exec cat", {"listen": listen, "listen_buffer": 50}),
        everything=("exec cat", {"listen": Listen()}),
    )
    async with console(manifest) as (host, app, pilot):
        await pilot.press("down", "down", "enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        assert isinstance(app.screen, DetailScreen) and app.screen.status.name == "alerts"
        shown = text_of(describe(app.screen.status))
        assert (
            "listens to  state, health events of api, alerts, as JSON lines on its stdin, "
            "a snapshot first; 50 kept while it does not read"
        ) in shown
        assert "every events of every service" not in shown
        everything = text_of(describe(host.snapshot()["everything"]))
        assert "listens to  every event of every service, as JSON lines" in everything
        assert "listens to" not in text_of(describe(host.snapshot()["api"]))
