"""The verbs against a console host: `tuisup` with its Textual console, in a pseudo-terminal."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Tuisup, tagged_pids
from tests.control.verbs import eventually, tuisup, write


class Console:
    """`python -m tuisup` in a pseudo-terminal of 120x40, its screen read and thrown away."""

    def __init__(self, folder: Path) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tuisup"],
            cwd=folder,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**env, "TERM": "xterm-256color", "TEXTUAL_ANIMATIONS": "none"},
            start_new_session=True,
        )
        os.close(slave)
        self._master = master
        self.screen = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:  # the other end closed: the console exited
                return
            if not data:
                return
            self.screen += data[-4096:]
            del self.screen[:-65536]

    def finish(self, timeout: float = 20.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        os.close(self._master)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def console(tmp_path: Path, token: str) -> Iterator[Console]:
    write(tmp_path, token)
    host = Console(tmp_path)
    try:

        def up() -> bool:
            done = tuisup("ps", "--json", cwd=tmp_path)
            if done.returncode != 0:
                return False
            return all(v["state"] == "running" for v in json.loads(done.stdout)[:3])

        eventually(up, timeout=20, what="the console host's services running")
        yield host
    finally:
        host.kill()


def test_every_verb_against_a_console_host(console: Console, tmp_path: Path, token: str) -> None:
    done = tuisup("ps", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.splitlines()[3].split()[:2] == ["web", "running"]
    events = Tuisup("events", "--json", "web", cwd=tmp_path)
    logs = Tuisup("logs", "-f", "web", cwd=tmp_path)
    logs.expect(lambda line: line == "web | web says hi")
    done = tuisup("restart", "web", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("web running (pid ")
    logs.expect(lambda line: "── run 2 · stopped after" in line)
    events.expect(lambda line: json.loads(line).get("state") == "running")
    done = tuisup("stop", "db", cwd=tmp_path)
    assert done.stdout == "db: stopped first api, which depends on it\ndb stopped\n"
    assert tuisup("start", "api", cwd=tmp_path).returncode == 0
    assert tuisup("kill", "web", cwd=tmp_path).returncode == 0
    path = tmp_path / "services.toml"
    path.write_text(path.read_text() + '\n[services.extra]\ncommand = "sleep 303"\n')
    done = tuisup("reload", cwd=tmp_path)  # the console host may have applied it on save
    assert done.stdout.removeprefix("manifest reloaded: ") in ("added extra\n", "nothing changed\n")
    done = tuisup("logs", "-n", "1", "web", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("web | ")
    done = tuisup("down", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert console.finish() == 0  # the console saw its host stop, and left
    assert logs.finish() == 0 and events.finish() == 0
    assert not list(tagged_pids(token))
    assert not (tmp_path / ".tuisup" / "tuisup.sock").exists()
