"""Hooks as a user sees them from `tuisup --no-tui` (text and `--json`), a real subprocess;
and a SIGKILL of tuisup that takes a running hook with it."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

from tests.conftest import Tuisup, tagged_pids, untimed

MANIFEST = """\
[services.job]
command = "echo working; exit 3"
shell = true
restart = "never"

[services.job.on]
started = "echo hook says hi"
exited = "echo code $TUISUP_EXIT_CODE > exit-code.txt; echo it broke >&2; exit 4"
"""


def write(tmp_path: Path, text: str) -> None:
    (tmp_path / "services.toml").write_text(textwrap.dedent(text))


def test_the_printer_shows_hook_output_and_one_line_per_failed_run(tmp_path: Path) -> None:
    write(tmp_path, MANIFEST)
    tuisup = Tuisup("--no-tui", cwd=tmp_path)
    assert tuisup.finish() == 1
    out = tuisup.lines
    assert "job | hook says hi" in out and "job | it broke" in out
    failed = [line for line in out if line.startswith("job: hook ")]
    assert len(failed) == 1, out
    assert failed[0].startswith('job: hook "exited" failed with code 4 after ')
    # The run's last hook ran before tuisup ended: the shutdown waits for it.
    assert (tmp_path / "exit-code.txt").read_text() == "code 3\n"
    assert out[-1] == "tuisup: every service stopped"
    log = untimed((tmp_path / ".tuisup" / "logs" / "job.log").read_text().splitlines())
    assert "hook says hi" in log and "it broke" in log


def test_json_carries_a_hook_event_per_run(tmp_path: Path) -> None:
    write(tmp_path, MANIFEST)
    tuisup = Tuisup("--no-tui", "--json", cwd=tmp_path)
    tuisup.finish()
    events = [json.loads(line) for line in tuisup.lines]
    hooks = [e for e in events if e["event"] == "hook"]
    assert [(e["hook"], e.get("exit_code")) for e in hooks] == [("started", 0), ("exited", 4)]
    exited = hooks[1]
    assert exited["service"] == "job" and exited["coalesced"] == 1
    assert exited["timed_out"] is False and exited["timeout"] == 10
    assert exited["command"].startswith("echo code $TUISUP_EXIT_CODE")
    outputs = [e for e in events if e["event"] == "output" and e["stream"] == "hook"]
    assert [line for e in outputs for line in e["lines"]] == ["hook says hi", "it broke"]
    assert events[-1]["event"] == "host_stopped"


def test_sigkill_of_tuisup_takes_a_running_hook_with_it(tmp_path: Path, token: str) -> None:
    write(
        tmp_path,
        f"""
        [services.svc]
        command = "sleep 60"
        env = {{ TUISUP_TEST_TOKEN = "{token}" }}
        hook_timeout = 60
        on.started = "sleep 63 & exec sleep 64"
        """,
    )
    tuisup = Tuisup("--no-tui", cwd=tmp_path)
    tuisup.expect(lambda line: line.startswith("svc started"))
    deadline = time.monotonic() + 5
    while len(list(tagged_pids(token))) < 3:  # the service, the hook and its child
        assert time.monotonic() < deadline, list(tagged_pids(token))
        time.sleep(0.01)
    tuisup.proc.kill()
    tuisup.finish()
    deadline = time.monotonic() + 2
    while list(tagged_pids(token)):
        assert time.monotonic() < deadline, "a process outlived tuisup"
        time.sleep(0.01)
