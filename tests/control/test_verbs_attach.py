"""`tuisup attach` in a real terminal (tmux) on a host started by `tuisup up -d`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import tagged_pids
from tests.control.verbs import tuisup, write
from tests.e2e.test_tmux import keys, session, wait_for

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
__all__ = ["session"]  # the fixture, for the test below


def test_attach_shows_the_console_and_q_detaches(tmp_path: Path, session: str, token: str) -> None:
    write(tmp_path, token)
    started = tuisup("up", "-d", "--json", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    try:
        command = f"unset COLUMNS LINES; {sys.executable} -m tuisup attach; echo EXITED $?"
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "32"]
            + ["-e", "TEXTUAL_ANIMATIONS=none", "-c", str(tmp_path), "bash", "-c"]
            + [command + "; sleep 30"],
            check=True,
        )
        screen = wait_for(session, lambda s: "q Detach" in s and s.count("running") >= 3)
        assert "q Quit" not in screen
        keys(session, "q")
        screen = wait_for(session, lambda s: "EXITED 0" in s)
        assert "tuisup (services.toml): detached, every service keeps running" in screen
        done = tuisup("ps", "--json", cwd=tmp_path)
        states = {v["service"]: v["state"] for v in json.loads(done.stdout)}
        assert states["web"] == states["db"] == "running"
    finally:
        assert tuisup("down", cwd=tmp_path).returncode == 0
    assert not list(tagged_pids(token))
