"""`tuisup` and `tuisup --no-tui` serve their socket: bound before any service starts, so a
second host is refused before it runs anything, and removed when the host exits."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Tuisup, tagged_pids
from tests.control.raw import short_folder
from tests.control.test_server_socket import NOBODY, as_nobody, as_root

SOCKET = Path(".tuisup") / "tuisup.sock"


@pytest.fixture
def folder() -> Iterator[Path]:
    with short_folder() as path:
        yield path


def manifest(folder: Path, token: str, extra: str = "") -> Path:
    path = folder / "services.toml"
    path.write_text(
        extra
        + textwrap.dedent(f"""
        [services.web]
        command = "sh -c 'echo $$ >> started; echo web is up; exec sleep 60'"
        env = {{ TUISUP_TEST_TOKEN = "{token}" }}
        """)
    )
    return path


def hello(path: Path) -> dict[str, Any]:
    """A hello over a plain blocking socket, as another program would say it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect(str(path))
        client.sendall(b'{"id": 0, "op": "hello", "version": 1}\n')
        with client.makefile("rb") as answers:
            answer: dict[str, Any] = json.loads(answers.readline())
    return answer["result"]  # type: ignore[no-any-return]


def wait_for(check: Any, timeout: float = 10.0) -> None:
    """Poll `check` (a file system fact: the kernel sends no event for it)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_headless_host_serves_its_socket_and_removes_it(folder: Path, token: str) -> None:
    path = manifest(folder, token)
    host = Tuisup("--no-tui", cwd=folder)
    host.expect(lambda line: "web is up" in line)
    said = hello(folder / SOCKET)
    assert said["pid"] == host.proc.pid
    assert said["manifest"] == str(path)
    assert said["socket"] == str(folder / SOCKET)
    host.proc.send_signal(signal.SIGTERM)
    assert host.finish() == 0
    assert not os.path.lexists(folder / SOCKET)
    assert not list(tagged_pids(token))


def test_a_second_host_is_refused_before_it_starts_anything(folder: Path, token: str) -> None:
    manifest(folder, token)
    first = Tuisup("--no-tui", cwd=folder)
    first.expect(lambda line: "web is up" in line)
    second = subprocess.run(
        [sys.executable, "-m", "tuisup", "--no-tui"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 1
    assert second.stderr == (
        f"tuisup is already running services.toml (pid {first.proc.pid}): "
        "tuisup attach opens its console\n"
    )
    assert second.stdout == ""
    assert len((folder / "started").read_text().split()) == 1  # its web never ran
    assert len(list(tagged_pids(token))) == 1
    assert hello(folder / SOCKET)["pid"] == first.proc.pid  # the first one's socket stays
    first.proc.send_signal(signal.SIGTERM)
    assert first.finish() == 0


def test_a_socket_that_cannot_be_bound_is_one_line_and_exit_1(folder: Path, token: str) -> None:
    (folder / "afile").write_text("")
    manifest(folder, token, '[tuisup]\nsocket = "afile/ctl.sock"\n')
    done = subprocess.run(
        [sys.executable, "-m", "tuisup", "--no-tui"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert done.stderr == (
        "tuisup: cannot serve the control socket afile/ctl.sock: afile: File exists\n"
    )
    assert not (folder / "started").exists()


def test_a_path_too_long_for_a_socket_falls_back_and_says_so(folder: Path, token: str) -> None:
    path = manifest(folder, token)
    deep = folder / ("d" * 60) / ("e" * 60)
    runtime = folder / "run"
    runtime.mkdir(mode=0o700)
    host = Tuisup("--no-tui", "--socket", str(deep / "ctl.sock"), cwd=folder,
                  env={"XDG_RUNTIME_DIR": str(runtime)})  # fmt: skip
    host.expect(lambda line: "web is up" in line)
    digest = hashlib.sha256(os.fsencode(path)).hexdigest()[:16]
    short = runtime / "tuisup" / f"{digest}.sock"
    assert hello(short)["pid"] == host.proc.pid
    assert not deep.exists()
    host.proc.send_signal(signal.SIGTERM)
    assert host.finish() == 0
    assert host.proc.stderr is not None
    assert host.proc.stderr.read() == (
        f"tuisup: control socket {short} ({deep / 'ctl.sock'} is too long for a socket address)\n"
    )
    assert not os.path.lexists(short)


@as_root
def test_the_printer_says_once_that_another_user_was_refused(folder: Path, token: str) -> None:
    os.chmod(folder, 0o755)
    manifest(folder, token, '[tuisup]\nsocket = "ctl.sock"\n')
    host = Tuisup("--no-tui", cwd=folder)
    host.expect(lambda line: "web is up" in line)
    os.chmod(folder / "ctl.sock", 0o666)  # as if the modes had failed
    assert as_nobody(folder / "ctl.sock", 2) == ["closed", "closed"]
    line = host.expect(lambda line: "refused" in line)
    assert line.startswith("tuisup: refused a control connection from uid 65534 (pid ")
    assert line.endswith("): not this user")
    assert hello(folder / "ctl.sock")["pid"] == host.proc.pid
    host.proc.send_signal(signal.SIGTERM)
    assert host.finish() == 0
    assert sum(f"uid {NOBODY}" in line for line in host.lines) == 1


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_console_serves_its_socket_and_removes_it(folder: Path, token: str) -> None:
    manifest(folder, token)
    session = f"tuisup-srv-{token[:8]}"
    command = f"unset COLUMNS LINES; {sys.executable} -m tuisup; sleep 30"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "32", "-c", str(folder),
         command],
        check=True,
    )  # fmt: skip
    try:
        wait_for(lambda: (folder / "started").exists(), timeout=20)
        wait_for(lambda: os.path.exists(folder / SOCKET))
        pid = hello(folder / SOCKET)["pid"]
        assert pid != os.getpid()
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        wait_for(lambda: not os.path.lexists(folder / SOCKET), timeout=20)
        wait_for(lambda: not list(tagged_pids(token)))
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
