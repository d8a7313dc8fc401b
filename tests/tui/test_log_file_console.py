"""The console tells, with a warning, when a service's log file cannot be written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.conftest import untimed
from tests.tui.test_console import console, until
from tuisup.spec import Manifest
from tuisup.tui.app import TuisupApp


def notes(app: TuisupApp, severity: str) -> list[tuple[str, str]]:
    return [(n.title, n.message) for n in app._notifications if n.severity == severity]


async def test_the_console_warns_of_a_log_file_that_failed_before_it_was_up(
    make_manifest: Callable[..., Manifest], tmp_path: Path
) -> None:
    (tmp_path / "logs").write_text("")  # log_dir is a file: no NAME.log can be made in it
    manifest = make_manifest(web="echo one; echo two; sleep 60")
    async with console(manifest) as (host, app, pilot):
        await until(pilot, lambda: bool(notes(app, "warning")))
        assert notes(app, "warning") == [
            (
                "web: log file",
                f"cannot write {tmp_path / 'logs' / 'web.log'}: Not a directory; "
                "lines are kept in memory only",
            )
        ]


async def test_the_console_warns_once_of_a_log_file_failing_while_it_runs_and_says_it_is_back(
    make_manifest: Callable[..., Manifest], tmp_path: Path
) -> None:
    command = "until [ -e go ]; do sleep 0.02; done; while :; do echo tick; sleep 0.05; done"
    async with console(make_manifest(web=command)) as (host, app, pilot):
        (tmp_path / "logs").write_text("")
        (tmp_path / "go").touch()
        await until(pilot, lambda: bool(notes(app, "warning")))
        (tmp_path / "logs").unlink()
        log = tmp_path / "logs" / "web.log"
        await until(pilot, lambda: bool(notes(app, "information")))
        [(title, message)] = notes(app, "information")
        assert title == "web: log file"
        assert message.startswith(f"writing {log} again; ")
        assert message.endswith(" lines are missing from it")
        assert len(notes(app, "warning")) == 1
        assert untimed(log.read_text().splitlines()[:2]) == [f"tuisup: {message}", "tick"]
