"""Helpers for the verbs' tests: a manifest on disk, the `tuisup` command, a headless host."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Tuisup, write_manifest

SERVICES = """
[services.db]
command = "sleep 300"
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[services.api]
command = "sleep 301"
depends_on = ["db"]
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[services.web]
command = "sh -c 'echo web says hi; exec sleep 302'"
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[services.broken]
command = "/nonexistent/binary"
autostart = false
restart = "never"
"""
"""db, api (which needs db), web, and broken (which cannot start; not started)."""


def write(folder: Path, token: str, text: str = SERVICES) -> Path:
    """The manifest `text` at `folder/services.toml`, with the test's token."""
    return write_manifest(folder, text, token)


def tuisup(
    *args: str, cwd: Path, timeout: float = 30.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m tuisup ARGS` to its end, as a user runs a verb."""
    return subprocess.run(
        [sys.executable, "-m", "tuisup", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def headless(folder: Path, *running: str, options: tuple[str, ...] = ()) -> Tuisup:
    """A `tuisup --no-tui` host in `folder`, once `running` services have started."""
    host = Tuisup("--no-tui", *options, cwd=folder)
    for name in running:
        host.expect(lambda line, name=name: line.startswith(f"{name} started (pid "))
    return host


def eventually(check: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Look again and again (what is looked at sends no event) until `check()` holds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)
