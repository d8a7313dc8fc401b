"""The console's `t` shows when each line was read, as the log file says, not when it is drawn."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import untimed
from tests.tui.test_console import console, until
from tests.tui.test_log_wrap import rows_on_screen
from tuisup.logfiles import parse_stamp
from tuisup.spec import Manifest
from tuisup.tui.widgets.log_view import LogView


async def test_t_shows_the_time_each_line_was_read(
    make_manifest: Callable[..., Manifest], tmp_path: Path
) -> None:
    command = "echo early; until [ -e go ]; do sleep 0.02; done; echo late; sleep 60"
    async with console(make_manifest(web=command)) as (host, app, pilot):
        view = app.query_one(LogView)
        await pilot.press("down")  # the service's own log
        await until(pilot, lambda: "early" in view.visible_text())
        (early,) = [b.ts for b in host.store.since("web", 0) if "early" in b.lines]
        # Two seconds on the clock apart: drawn now, a line would show the later one.
        await until(pilot, lambda: int(time.time()) >= int(early) + 2)
        (tmp_path / "go").touch()
        await until(pilot, lambda: "late" in view.visible_text())
        await pilot.press("t")
        await pilot.pause()
        rows = {row.rstrip().split()[-1]: row for row in rows_on_screen(view) if row.strip()}
        (late,) = [b.ts for b in host.store.since("web", 0) if "late" in b.lines]
        assert rows["early"].lstrip().startswith(time.strftime("%H:%M:%S", time.localtime(early)))
        assert rows["late"].lstrip().startswith(time.strftime("%H:%M:%S", time.localtime(late)))
    written = (tmp_path / "logs" / "web.log").read_text().splitlines()
    stamps = {
        line: parse_stamp(stamp.split(" ")[0])
        for stamp, line in zip(written, untimed(written), strict=True)
    }
    assert stamps["early"] == int(early * 1000) / 1000, "the file has the same time"
