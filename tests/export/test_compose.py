"""`tuisup export compose`: valid against the Compose Specification, every loss said."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.export.conftest import DEMO, REPO, tuisup, validate_compose

PREFIX = "tuisup export: "
BACKOFF = "docker waits 100 ms, doubled after each restart up to 1 min"
WATCH = "files that change do not restart it"
HOOKS = "hooks run only under tuisup"
EVERY_KEY_LOSSES = [
    "[tuisup]: key log_dir has no equivalent in compose: the target keeps the output",
    "[tuisup]: key shutdown_timeout has no equivalent in compose: "
    "each service's own stop timeout applies",
    "[tuisup]: key log_lines has no equivalent in compose: the target keeps the output",
    "[tuisup]: key reload has no equivalent in compose: edit and export again",
    "[tuisup]: key socket has no equivalent in compose: there is no running tuisup to control",
    "[tuisup]: key log_max_bytes has no equivalent in compose: the target keeps the output",
    "[tuisup]: key log_backups has no equivalent in compose: the target keeps the output",
    "[tuisup]: key log_timestamps has no equivalent in compose: the target keeps the output",
    "[tuisup]: key log_format has no equivalent in compose: the target keeps the output",
    "[tuisup]: key metrics has no equivalent in compose: tuisup's metrics exist only under tuisup",
    f"service db: key backoff has no equivalent in compose: {BACKOFF}",
    f"service db: key backoff_delay has no equivalent in compose: {BACKOFF}",
    f"service db: key backoff_max has no equivalent in compose: {BACKOFF}",
    "service db: key jitter has no equivalent in compose: restart delays are not spread at random",
    'service db: key max_restarts has no equivalent in compose: restart = "always" has no limit '
    "in compose",
    "service db: key restart_window has no equivalent in compose: "
    "on-failure:N counts the restarts of the container's whole life",
    "service db: key start_timeout has no equivalent in compose: a start has no deadline",
    "service db: key restart_dependents has no equivalent in compose: "
    "its dependents are not restarted when it starts again",
    "service migrate: key success_exit_codes has no equivalent in compose: "
    "any exit code but 0 is a failure",
    "service web: key restart_on_unhealthy has no equivalent in compose: "
    "docker does not restart an unhealthy container",
    f"service web: key backoff has no equivalent in compose: {BACKOFF}",
    f"service web: key watch has no equivalent in compose: {WATCH}",
    f"service web: key watch_ignore has no equivalent in compose: {WATCH}",
    f"service web: key watch_debounce has no equivalent in compose: {WATCH}",
    f"service web: key hook_timeout has no equivalent in compose: {HOOKS}",
    f"service web: key on.started has no equivalent in compose: {HOOKS}",
    f"service web: key on.failed has no equivalent in compose: {HOOKS}",
    f"service worker: key backoff has no equivalent in compose: {BACKOFF}",
    f"service worker: key backoff_delay has no equivalent in compose: {BACKOFF}",
    f"service tick: key backoff has no equivalent in compose: {BACKOFF}",
    'service tick: key executor has no equivalent in compose: executor "thread" runs in '
    "tuisup's process; here it is a process of its own",
    "service auto: key executor has no equivalent in compose: with no executor, it runs in "
    "tuisup's process; here it is a process of its own",
    "service watcher: key listen has no equivalent in compose: "
    "tuisup's events exist only under tuisup: its stdin is empty",
    "service watcher: key listen_buffer has no equivalent in compose: "
    "tuisup's events exist only under tuisup",
    "service watcher: key log_format has no equivalent in compose: the target keeps the output",
]


def export(manifest: Path, *args: str) -> tuple[Path, list[str]]:
    """Export `manifest` to compose.yaml beside it; return the file and the warning lines."""
    out = manifest.parent / "compose.yaml"
    done = tuisup("-f", str(manifest), "export", "compose", "-o", str(out), *args)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert all(line.startswith(PREFIX) for line in lines), done.stderr
    return out, [line.removeprefix(PREFIX) for line in lines]


def services(path: Path) -> dict[str, dict[str, object]]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict)
    return dict(loaded["services"])


def test_the_demo_exports_to_a_valid_compose_file(tmp_path: Path) -> None:
    shutil.copy(DEMO, tmp_path / "services.toml")
    shutil.copytree(REPO / "demo", tmp_path / "demo")
    out, _ = export(tmp_path / "services.toml")
    validate_compose(out)
    got = services(out)
    assert list(got) == [
        *("web", "chatty", "flaky", "greeter", "db", "migrate", "api"),
        *("ticker", "echo", "crunch", "moody", "alerts", "warden"),
    ]
    assert got["echo"]["deploy"]["replicas"] == 2
    assert got["api"]["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }


def test_a_manifest_with_every_key_exports_valid_and_says_each_loss(every_key: Path) -> None:
    out, losses = export(every_key)
    validate_compose(out)
    assert losses == EVERY_KEY_LOSSES


def test_every_key_maps_to_its_compose_field(every_key: Path) -> None:
    out, _ = export(every_key)
    got = services(out)
    assert got["db"] == {
        "image": "python:3.13-slim",
        "command": ["python", "-u", "db.py", "--port", "5432"],
        "working_dir": "/app/app",
        "volumes": [".:/app"],
        "network_mode": "host",
        # compose would read "$5" as a variable: "$$" is a dollar sign.
        "environment": {"DB_NAME": "shop", "GREETING": "cost: $$5 or 100%"},
        "env_file": ["app/.env"],
        "restart": "always",
        "stop_signal": "SIGINT",
        "stop_grace_period": "7500ms",
        "healthcheck": {
            "test": [
                *("CMD", "python", "-c"),
                "import socket\nsocket.create_connection(('127.0.0.1', 5432), 1.0).close()",
            ],
            "interval": "2s",
            "timeout": "1s",
            "retries": 5,
            "start_period": "3s",
        },
    }
    assert got["migrate"]["command"] == [
        *("/bin/sh", "-c"),
        "python manage.py migrate && echo done at $$(date)",
    ]
    assert got["migrate"]["restart"] == "no"
    assert got["web"]["restart"] == "on-failure:5"
    assert got["worker"]["healthcheck"]["test"] == ["CMD-SHELL", "celery -A app inspect ping"]
    assert got["worker"]["depends_on"] == {"db": {"condition": "service_started"}}
    assert got["worker"]["profiles"] == ["manual"]  # autostart = false
    assert got["stream"]["command"] == [
        *("/bin/sh", "-c"),
        "exec python -m tuisup.child stream app.jobs:Stream async-process 15 3 /app 3>/dev/null",
    ]


def test_an_http_check_becomes_a_python_probe_that_passes_on_its_status(
    every_key: Path, tmp_path: Path
) -> None:
    """The probe runs for real against a server answering 204, then one answering 200."""
    out, _ = export(every_key)
    probe = services(out)["web"]["healthcheck"]["test"]
    assert probe[:3] == ["CMD", "python", "-c"]
    source = str(probe[3])
    server = (
        "import http.server, sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(int(sys.argv[1])); self.end_headers()\n"
        "    def log_message(self, *a): pass\n"
        "s = http.server.HTTPServer(('127.0.0.1', 0), H)\n"
        "print(s.server_address[1], flush=True)\n"
        "s.serve_forever()\n"
    )
    results = []
    for status in (204, 200):
        proc = subprocess.Popen(
            ["python", "-c", server, str(status)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert proc.stdout is not None
            port = proc.stdout.readline().strip()
            mine = source.replace("8000", port)
            done = subprocess.run(["python", "-c", mine], capture_output=True, timeout=30)
            results.append(done.returncode)
        finally:
            proc.kill()
            proc.wait()
    assert results == [0, 1]


def test_strict_fails_on_a_loss_and_writes_nothing(every_key: Path) -> None:
    out = every_key.parent / "compose.yaml"
    done = tuisup("-f", str(every_key), "export", "compose", "--strict", "-o", str(out))
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "tuisup export: --strict: 35 settings compose cannot express; nothing written"
    )
    assert not out.exists()


def test_strict_passes_a_manifest_compose_can_say_whole(tmp_path: Path) -> None:
    manifest = tmp_path / "services.toml"
    manifest.write_text('[services.web]\ncommand = "python -m http.server"\nrestart = "always"\n')
    done = tuisup("-f", str(manifest), "export", "compose", "--strict")
    assert (done.returncode, done.stderr) == (0, "")
    assert yaml.safe_load(done.stdout)["services"]["web"]["restart"] == "always"


def test_the_compose_file_starts_for_real_where_docker_runs(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed")
    info = subprocess.run([docker, "info"], capture_output=True, timeout=30)
    if info.returncode != 0:
        pytest.skip("docker is installed but its daemon is not running")
    manifest = tmp_path / "services.toml"
    manifest.write_text(
        '[services.hello]\ncommand = "python -c \\"print(\'up and running\')\\""\n'
        'restart = "never"\n'
    )
    out, _ = export(manifest)
    done = subprocess.run(
        [docker, "compose", "-f", str(out), "up", "--abort-on-container-exit"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    subprocess.run([docker, "compose", "-f", str(out), "down"], capture_output=True, timeout=120)
    assert "up and running" in done.stdout, done.stdout + done.stderr


def test_a_python_target_runs_as_the_exported_command_says(tmp_path: Path) -> None:
    """The child command works outside tuisup: its status descriptor goes to /dev/null."""
    (tmp_path / "jobs.py").write_text(
        "import time\ndef run():\n    print('target up', flush=True)\n    time.sleep(60)\n"
    )
    manifest = tmp_path / "services.toml"
    manifest.write_text('[services.job]\ntarget = "jobs:run"\nexecutor = "process"\n')
    out, _ = export(manifest)
    shell, flag, script = services(out)["job"]["command"]
    assert (shell, flag) == ("/bin/sh", "-c")
    # Here, not in a container: this Python, and the project where /app would be.
    script = script.replace("exec python ", f"exec {sys.executable} ").replace(
        "/app", str(tmp_path)
    )
    proc = subprocess.Popen(
        [shell, flag, script],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "target up\n"
        proc.send_signal(signal.SIGTERM)  # the stop signal it was exported with
        assert proc.wait(timeout=30) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()
    assert proc.stderr is not None and proc.stderr.read() == ""
