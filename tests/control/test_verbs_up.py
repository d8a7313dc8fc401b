"""`tuisup up -d` and `tuisup down` as a user runs them: a host in the background, then gone."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import tagged_pids
from tests.control.verbs import SERVICES, eventually, tuisup, write


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie has exited: its new parent, init, reaps it in its time)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in (b"Z", b"X")


@pytest.fixture
def daemons() -> Iterator[list[int]]:
    """Pids of hosts a test started in the background: killed if the test left them."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)  # its lifeline then kills its services


def host_pid(stdout: str) -> int:
    found = re.search(r"\(pid (\d+)\)", stdout.splitlines()[-1])
    assert found, stdout
    return int(found.group(1))


def test_up_d_from_a_fresh_shell_then_down_leaves_zero_processes(
    tmp_path: Path, token: str, daemons: list[int]
) -> None:
    write(tmp_path, token)
    # A shell of its own session, that exits as soon as `up -d` returns.
    done = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m tuisup up -d"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
    )
    assert done.returncode == 0, done.stderr
    pid = host_pid(done.stdout)
    daemons.append(pid)
    lines = done.stdout.splitlines()
    assert lines[-1] == (
        f"tuisup runs services.toml in the background (pid {pid}); its output: .tuisup/tuisup.log"
    )
    assert [line.split()[0] for line in lines[:-1]] == ["db", "api", "web", "broken"]
    assert re.match(r"web +running \(pid \d+\)$", lines[2])
    assert lines[1].split()[1] in ("running", "waiting")  # api waits for db, or runs
    assert alive(pid) and len(list(tagged_pids(token))) >= 2
    assert os.getsid(pid) == pid  # a session of its own: no terminal's signals reach it
    log = (tmp_path / ".tuisup" / "tuisup.log").read_text()
    assert "web started (pid " in log
    assert tuisup("ps", cwd=tmp_path).returncode == 0

    done = tuisup("down", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not alive(pid)
    assert not (tmp_path / ".tuisup" / "tuisup.sock").exists()
    assert not list(tagged_pids(token))
    assert "tuisup: every service stopped" in (tmp_path / ".tuisup" / "tuisup.log").read_text()


def test_up_d_again_says_it_runs_already(tmp_path: Path, token: str, daemons: list[int]) -> None:
    write(tmp_path, token)
    first = tuisup("up", "-d", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    started = json.loads(first.stdout)
    daemons.append(started["pid"])
    assert started["already"] is False
    assert [v["service"] for v in started["services"]] == ["db", "api", "web", "broken"]
    again = tuisup("up", "-d", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == (
        f"tuisup was already running services.toml (pid {started['pid']})"
    )
    assert tuisup("down", "--json", cwd=tmp_path).stdout == (
        f'{{"stopped": true, "pid": {started["pid"]}}}\n'
    )


def test_up_d_exits_1_when_an_autostart_service_failed(
    tmp_path: Path, token: str, daemons: list[int]
) -> None:
    write(tmp_path, token, SERVICES.replace("autostart = false\n", ""))
    done = tuisup("up", "-d", cwd=tmp_path)
    daemons.append(host_pid(done.stdout))
    assert done.returncode == 1
    assert re.search(r"^broken failed: cannot start: ", done.stdout, re.M)
    assert tuisup("down", cwd=tmp_path).returncode == 0


def test_up_d_prints_a_bad_manifests_errors_as_check_does(tmp_path: Path, token: str) -> None:
    write(tmp_path, token, SERVICES + '\n[services.typo]\ncomand = "x"\n')
    check = tuisup("check", cwd=tmp_path)
    done = tuisup("up", "-d", cwd=tmp_path)
    assert (done.returncode, done.stderr, done.stdout) == (1, check.stderr, "")
    assert "comand" in done.stderr
    assert not (tmp_path / ".tuisup").exists()  # nothing was started


def test_up_d_shows_why_the_host_did_not_start(tmp_path: Path, token: str) -> None:
    write(tmp_path, token)
    (tmp_path / ".tuisup").mkdir(mode=0o700)
    (tmp_path / ".tuisup" / "tuisup.sock").write_text("not a socket")
    done = tuisup("up", "-d", cwd=tmp_path)
    assert done.returncode == 1
    assert "tuisup: the host exited with status 1 before it was up" in done.stderr
    assert "exists and is not a socket: left alone" in done.stderr  # the end of its log
    assert (tmp_path / ".tuisup" / "tuisup.sock").read_text() == "not a socket"
    eventually(lambda: not list(tagged_pids(token)), what="nothing started")
