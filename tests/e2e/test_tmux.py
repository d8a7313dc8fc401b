"""The console in a real terminal: tmux runs `tuisup`, keys go in, the pane is read."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import tagged_pids

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


@pytest.fixture
def session() -> Iterator[str]:
    name = f"tuisup-e2e-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def pane(name: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True
    ).stdout


def wait_for(name: str, check: Callable[[str], bool], timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        screen = pane(name)
        if check(screen):
            return screen
        if time.monotonic() > deadline:
            raise AssertionError(f"the pane never showed it; it shows:\n{screen}")
        time.sleep(0.1)


def keys(name: str, *keys: str) -> None:
    subprocess.run(["tmux", "send-keys", "-t", name, *keys], check=True)


def test_a_person_starts_the_console_stops_a_service_and_quits(
    tmp_path: Path, session: str, token: str
) -> None:
    (tmp_path / "services.toml").write_text(
        textwrap.dedent(f"""
        [services.web]
        command = "sh -c 'echo web is up; exec sleep 60'"
        env = {{ TUISUP_TEST_TOKEN = "{token}" }}

        [services.worker]
        command = "sh -c 'echo worker is up; exec sleep 61'"
        env = {{ TUISUP_TEST_TOKEN = "{token}" }}
        """)
    )
    # pytest exports COLUMNS=80 and LINES=24, which Textual would believe over the pane.
    command = f"unset COLUMNS LINES; {sys.executable} -m tuisup; echo EXITED $?; sleep 30"
    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "120",
            "-y",
            "32",
            "-e",
            "TEXTUAL_ANIMATIONS=none",
            "-c",
            str(tmp_path),
            "bash",
            "-c",
            command,
        ],
        check=True,
    )
    screen = wait_for(session, lambda s: "worker" in s and s.count("running") >= 2)
    assert "● 2 running" in screen
    wait_for(session, lambda s: "web is up" in s and "worker is up" in s)  # the merged log

    keys(session, "Down")  # select web
    keys(session, "x")
    screen = wait_for(session, lambda s: re.search(r"○ web +stopped", s) is not None)
    assert "● 1 running" in screen and "○ 1 stopped" in screen

    keys(session, "s")
    wait_for(session, lambda s: "● 2 running" in s)

    keys(session, "q")
    wait_for(session, lambda s: "EXITED 0" in s)
    deadline = time.monotonic() + 5
    while list(tagged_pids(token)):
        assert time.monotonic() < deadline, "a service outlived the console"
        time.sleep(0.05)
