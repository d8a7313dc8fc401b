"""Manifests to export, the validators that check the output offline, and running tuisup."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "services.toml"

EVERY_KEY = """\
[tuisup]
log_dir = "logs"
shutdown_timeout = 20
log_lines = 500
reload = false
socket = "run/t.sock"
log_max_bytes = 1048576
log_backups = 3
log_timestamps = false
log_format = "json"
metrics = false

[tuisup.export]
image = "python:3.13-slim"

[services.db]
command = ["python", "-u", "db.py", "--port", "5432"]
cwd = "app"
env_file = "app/.env"
env = { DB_NAME = "shop", GREETING = "cost: $5 or 100%" }
restart = "always"
backoff = "exponential"
backoff_delay = 1
backoff_max = 16
jitter = 0.2
max_restarts = 4
restart_window = 30
stop_signal = "INT"
stop_timeout = 7.5
start_timeout = 12
healthcheck = { tcp = 5432, interval = 2, timeout = 1, retries = 5, start_period = 3 }
restart_dependents = true

[services.migrate]
command = "python manage.py migrate && echo done at $(date)"
shell = true
restart = "never"
success_exit_codes = [0, 3]
depends_on = { db = "healthy" }

[services.web]
command = "gunicorn app:wsgi --bind 0.0.0.0:8000"
depends_on = { db = "healthy", migrate = "completed" }
healthcheck = { http = "http://127.0.0.1:8000/health", status = 204, interval = 3 }
restart_on_unhealthy = true
backoff = "linear"
watch = ["app/**/*.py"]
watch_ignore = ["app/tests"]
watch_debounce = 300
hook_timeout = 5

[services.web.on]
started = "echo web up"
failed = ["notify-send", "web failed"]

[services.worker]
command = "celery -A app worker"
depends_on = ["db"]
healthcheck = { command = "celery -A app inspect ping", timeout = 10 }
backoff = "fixed"
backoff_delay = 2
autostart = false

[services.tick]
target = "app.jobs:tick"
executor = "thread"
backoff = "immediate"

[services.stream]
target = "app.jobs:Stream"
executor = "async-process"
stop_signal = "TERM"
env = { MODE = "stream" }

[services.auto]
target = "app.jobs:loop"

[services.watcher]
command = "python -u alerts.py"
cwd = "app"
listen = { kinds = ["state"] }
listen_buffer = 50
log_format = "raw"
"""
ENV_FILE = "SECRET_KEY=s3cr3t\nDATABASE_URL=postgres://db/shop\nDEBUG=1\n"


@pytest.fixture
def every_key(tmp_path: Path) -> Path:
    """A project whose manifest writes every key there is."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / ".env").write_text(ENV_FILE)
    path = tmp_path / "services.toml"
    path.write_text(EVERY_KEY)
    return path


def tuisup(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the tuisup command; return what it did."""
    return subprocess.run(
        [sys.executable, "-m", "tuisup", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


def tool(name: str) -> str:
    """A validator installed with the dev dependencies (beside this Python)."""
    path = Path(sys.executable).parent / name
    assert path.exists(), f"{name} is a dev dependency: uv sync"
    return str(path)


def validate_compose(path: Path) -> None:
    """Check a compose file against the Compose Specification's schema (offline, bundled)."""
    done = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def validate_k8s(*paths: Path) -> None:
    """Check Kubernetes objects against the schemas kubernetes-validate ships, strictly."""
    done = subprocess.run(
        [tool("kubernetes-validate"), "--strict", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARN" not in done.stdout + done.stderr, done.stdout + done.stderr


def verify_units(folder: Path) -> str:
    """What `systemd-analyze verify` says of every unit in `folder` (it must exit 0).

    A template's instance that has a drop-in folder (`NAME@1.service.d`) is verified with it.
    """
    units = sorted(
        str(path.with_suffix("") if path.is_dir() else path) for path in folder.iterdir()
    )
    done = subprocess.run(
        [systemd_analyze(), "verify", *units], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stderr


def systemd_analyze() -> str:
    """The systemd-analyze command, or skip the test saying why there is none."""
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    return found
