"""Snapshot tests of the console: deterministic pictures (no pids, no clocks, no output)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuisup.engine import Host
from tuisup.manifest import parse_manifest
from tuisup.tui.app import TuisupApp

MANIFEST = """
[services.web]
command = "python -m http.server 8000"
autostart = false
env = { PORT = "8000", SECRET_KEY = "do-not-show" }
healthcheck = { http = "http://127.0.0.1:8000/", interval = 2 }
restart_dependents = true

[services.worker]
target = "jobs.worker:run"
executor = "process"
autostart = false
restart = "always"
backoff = "linear"
depends_on = { web = "healthy" }

[services.ticker]
target = "jobs.ticker:run"
autostart = false
"""


ROOT = Path("/tmp/tuisup-snapshot")  # a fixed folder: its name and path are in the picture


def app(tmp_path: Path) -> TuisupApp:
    # A Host that is never entered: every service stays stopped, nothing moves.
    ROOT.mkdir(exist_ok=True)
    manifest = parse_manifest(MANIFEST, ROOT / "services.toml")
    return TuisupApp(Host(manifest))


def test_stopped_services(snap_compare: Any, tmp_path: Path) -> None:
    """Three stopped services under the host, lined up: grey circles, `stopped`, `×0`
    restarts, then what each would run as written (`python -m http.server 8000`,
    `jobs.worker:run (process)`, `jobs.ticker:run`); the merged log pane is empty and the
    footer, compact, lists s x r k a / F f t w ? q, all of them."""
    assert snap_compare(app(tmp_path), terminal_size=(120, 20))


def test_detail_of_a_service(snap_compare: Any, tmp_path: Path) -> None:
    """The detail screen of `web` over the console: its command, executor, cwd, restart
    policy, backoff, budget, stop, its health check and that dependents restart with it;
    "no exit yet"; PORT = 8000 and SECRET_KEY masked."""
    assert snap_compare(app(tmp_path), press=["down", "enter"], terminal_size=(120, 30))
