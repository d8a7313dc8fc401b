"""Where the verbs find the host (a configured socket, the short fallback), and a slow follower."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import Tuisup
from tests.control.raw import short_folder
from tests.control.verbs import tuisup, write

WEB = """
[services.web]
command = "sleep 300"
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }
"""


def test_the_verbs_find_a_socket_the_manifest_or_the_command_line_put_elsewhere(
    tmp_path: Path, token: str
) -> None:
    write(tmp_path, token, '[tuisup]\nsocket = "run/ctl.sock"\n' + WEB)
    host = Tuisup("--no-tui", cwd=tmp_path)
    host.expect(lambda line: line.startswith("web started"))
    assert (tmp_path / "run" / "ctl.sock").is_socket()
    done = tuisup("ps", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.splitlines()[1].startswith("web ")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = tuisup("-f", "../services.toml", "ps", "--json", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    done = tuisup("--socket", "run/ctl.sock", "-f", "nothing-here.toml", "ps", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = tuisup("ps", "--socket", "run/other.sock", cwd=tmp_path)
    assert done.returncode == 3
    assert "(start one with: tuisup --socket run/other.sock up -d)" in done.stderr
    assert tuisup("down", cwd=tmp_path).returncode == 0
    assert host.finish() == 0


def test_ps_says_when_the_socket_is_the_short_fallback(tmp_path: Path, token: str) -> None:
    deep = tmp_path / ("a-folder-with-a-long-name-" * 4)
    deep.mkdir()
    write(deep, token, WEB)
    assert len(str(deep / ".tuisup" / "tuisup.sock")) > 107
    with short_folder() as runtime:
        env = {"XDG_RUNTIME_DIR": str(runtime)}
        host = Tuisup("--no-tui", cwd=deep, env=env)
        host.expect(lambda line: line.startswith("web started"))
        done = tuisup("ps", cwd=deep, env=env)
        assert done.returncode == 0, done.stderr
        note = done.stdout.splitlines()[-1]
        assert re.fullmatch(
            rf"\(socket: {runtime}/tuisup/[0-9a-f]{{16}}\.sock, the short fallback: "
            r".*/\.tuisup/tuisup\.sock would not fit in a socket address\)",
            note,
        ), note
        assert tuisup("down", cwd=deep, env=env).returncode == 0
        assert host.finish() == 0


def test_a_follower_that_falls_behind_marks_where_lines_may_be_missing(
    tmp_path: Path, token: str
) -> None:
    count = 300_000
    wait = "while [ ! -e go ]; do sleep 0.01; done"
    flood = f"echo ready; {wait}; seq 1 {count} | sed 's/$/ {'x' * 90}/'; exec sleep 300"
    write(
        tmp_path,
        token,
        f'[services.flood]\ncommand = "sh -c \\"{flood}\\""\n'
        f'env = {{ TUISUP_TEST_TOKEN = "{token}" }}\n',
    )
    host = Tuisup("--no-tui", cwd=tmp_path)
    host.expect(lambda line: line == "flood | ready")
    follower = subprocess.Popen(
        [sys.executable, "-m", "tuisup", "logs", "-f", "flood"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,  # not read while the flood runs: it blocks, and falls behind
        stderr=subprocess.PIPE,
    )
    assert follower.stdout is not None
    assert follower.stdout.readline() == b"flood | ready\n"  # it follows: the flood may go
    (tmp_path / "go").touch()
    host.expect(lambda line: line == f"flood | {count} {'x' * 90}", timeout=60)
    # Now read it: it prints what it held, the mark, and what the host still keeps.
    lines: list[str] = []
    caught_up = threading.Event()

    def read() -> None:
        assert follower.stdout is not None
        for raw in follower.stdout:
            lines.append(raw.decode().rstrip("\n"))
            if lines[-1].startswith(f"flood | {count} "):
                caught_up.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert caught_up.wait(60), lines[-5:]
    assert tuisup("down", cwd=tmp_path).returncode == 0
    assert follower.wait(30) == 0
    reader.join(10)
    # Every line from the first, or a mark where some are missing.
    marks, gaps, last = 0, 0, 0
    marked = False
    for line in lines:
        if line.startswith("[tuisup: "):
            marks, marked = marks + 1, True
            continue
        number = int(line.split()[2])
        if number != last + 1 and not marked:
            gaps += 1
        last, marked = number, False
    assert marks >= 1  # it did fall behind
    assert gaps == 0  # and no line went missing without a mark before it
    assert last == count  # the end was read again from what the host keeps
    assert host.finish() == 0


def test_a_socket_that_never_answers_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: a socket that accepted but never said hello ended `ps` in a traceback."""
    from tuisup.cli import main
    from tuisup.control import client

    write(tmp_path, "unused", WEB)
    (tmp_path / ".tuisup").mkdir()
    mute = socket.socket(socket.AF_UNIX)
    with short_folder() as short:
        mute.bind(str(short / "mute.sock"))
        mute.listen()  # connections are queued, never accepted nor answered
        monkeypatch.setattr(client, "CONNECT_TIMEOUT", 0.2)
        monkeypatch.chdir(tmp_path)
        assert main(["--socket", str(short / "mute.sock"), "ps"]) == 1
        mute.close()
    assert capsys.readouterr().err == (f"tuisup: no answer from {short / 'mute.sock'} in 0.2 s\n")


def test_a_service_in_a_folder_without_the_manifest_reaches_its_host_through_tuisup_socket(
    tmp_path: Path, token: str
) -> None:
    """A service (or hook) whose cwd has no services.toml runs `tuisup ps` on its own host."""
    (tmp_path / "sub").mkdir()
    asker = (
        f'\n[services.asker]\ncommand = ["{sys.executable}", "-m", "tuisup", "ps"]\n'
        'cwd = "sub"\nrestart = "never"\ndepends_on = ["web"]\n'
        f'env = {{ TUISUP_TEST_TOKEN = "{token}" }}\n'
    )
    write(tmp_path, token, WEB + asker)
    host = Tuisup("--no-tui", cwd=tmp_path)
    host.expect(lambda line: line.startswith("asker | web ") and "running" in line)
    host.expect(lambda line: line.startswith("asker exited with code 0"))
    assert tuisup("ps", cwd=tmp_path / "sub").returncode == 3  # not from a shell of ours
    assert tuisup("down", cwd=tmp_path).returncode == 0
    assert host.finish() == 0
