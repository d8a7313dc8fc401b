"""The README and the demo manifest tell the truth: they load, run and name what exists."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.conftest import Tuisup
from tuisup.manifest import load_manifest, parse_manifest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_the_demo_manifest_is_valid() -> None:
    manifest = load_manifest(ROOT / "services.toml")
    assert list(manifest.services) == [
        "web",
        "chatty",
        "flaky",
        "greeter",
        "db",
        "migrate",
        "api",
        "ticker",
        "echo.0",
        "echo.1",
        "crunch",
        "moody",
        "alerts",
        "warden",
    ]
    assert list(manifest.instances("echo")) == ["echo.0", "echo.1"]
    assert manifest.groups["chain"].services == ("db", "migrate", "api")


def test_every_key_the_demo_uses_is_documented_in_the_readme() -> None:
    keys = set(re.findall(r"^(\w+) =", (ROOT / "services.toml").read_text(), re.M))
    documented = set(re.findall(r"^\| `(\w+)` \|", README, re.M))
    assert keys and keys <= documented, keys - documented


def test_the_readme_reference_example_loads(tmp_path: Path) -> None:
    block = README.split("## services.toml reference", 1)[1].split("```toml", 1)[1].split("```")[0]
    (tmp_path / "backend").mkdir()
    (tmp_path / "backend" / ".env").write_text("A=1\n")
    (tmp_path / ".env").write_text("A=1\n")
    manifest = parse_manifest(block, tmp_path / "services.toml")
    assert list(manifest.services) == ["web", "worker"]


def test_the_readme_dependencies_example_loads(tmp_path: Path) -> None:
    section = README.split("## Dependencies and health checks", 1)[1]
    block = section.split("```toml", 1)[1].split("```")[0]
    manifest = parse_manifest(block, tmp_path / "services.toml")
    assert list(manifest.services) == ["db", "migrate", "api"]
    assert manifest.services["api"].depends_on == {"db": "healthy", "migrate": "completed"}


def test_every_flag_the_readme_names_exists() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "tuisup", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in set(re.findall(r"`(--?[a-z][a-z-]*)", README)):
        assert flag in help_text, flag


def test_the_demo_runs_and_stops_cleanly() -> None:
    tuisup = Tuisup("--no-tui", cwd=ROOT)
    for replica, port in ((0, 8770), (1, 8771)):  # two replicas, each on its own port
        said = f"echo.{replica}  | echoing on 127.0.0.1:{port}"
        if said not in tuisup.lines:  # the replicas start side by side, in either order
            tuisup.expect(lambda line, said=said: line == said)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"ping\n")
            assert conn.makefile("rb").readline() == b"ping\n"
    if not any(line.startswith("warden  | watching flaky") for line in tuisup.lines):
        tuisup.expect(lambda line: line.startswith("warden  | watching flaky"))
    tuisup.expect(lambda line: line.startswith("flaky exited with code 3 after "), timeout=15)
    # The listener heard it.
    tuisup.expect(lambda line: line.startswith("alerts  | flaky crashed with exit code 3"))
    tuisup.expect(lambda line: line.startswith("crunch  | ") and "hashes/s" in line)
    assert "ticker started (async in tuisup)" in tuisup.lines
    assert "moody started (thread in tuisup)" in tuisup.lines
    assert "ticker  | tick 1" in tuisup.lines
    assert any(
        line.startswith("web     | Serving HTTP on 127.0.0.1 port 8765") for line in tuisup.lines
    )
    assert any(line.startswith("greeter | hello from ") for line in tuisup.lines)
    # The dependency chain: db warms up, migrate runs once it is healthy, then api serves.
    if "api is healthy" not in tuisup.lines:
        tuisup.expect(lambda line: line == "api is healthy", timeout=15)
    heard = "alerts  | db is healthy: migrate and api can start"
    if heard not in tuisup.lines:  # db was healthy long before api: this comes at once
        tuisup.expect(lambda line: line == heard)
    lines = tuisup.lines
    started = [line.split(" started")[0] for line in lines if " started (pid " in line]
    assert started.index("db") < started.index("migrate") < started.index("api")
    assert any(line.startswith("migrate exited with code 0") for line in lines)
    with urllib.request.urlopen("http://127.0.0.1:8768/", timeout=5) as response:
        assert response.read().decode().startswith("hello, visit ")
    tuisup.proc.send_signal(signal.SIGINT)
    assert tuisup.finish() == 0
    assert tuisup.lines[-1] == "tuisup: every service stopped"
    stopped = [line.split(" stopped")[0] for line in tuisup.lines if " stopped after " in line]
    assert stopped.index("api") < stopped.index("db")


def test_the_readme_replicas_and_groups_example_loads(tmp_path: Path) -> None:
    section = README.split("## Replicas and groups", 1)[1]
    block = section.split("```toml", 1)[1].split("```")[0]
    manifest = parse_manifest(block, tmp_path / "services.toml")
    assert list(manifest.services) == [
        "broker",
        "worker.0",
        "worker.1",
        "worker.2",
        "web.0",
        "web.1",
    ]
    assert manifest.services["web.1"].port == 8001
    assert manifest.groups["pipeline"].services == ("broker", "worker")
