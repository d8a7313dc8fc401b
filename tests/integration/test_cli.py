"""`tuisup --no-tui`, `--json` and `check` as a user runs them: a real subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Tuisup, tagged_pids, untimed, write_manifest


def test_text_output_is_prefixed_and_exit_status_reports_a_failure(tmp_path: Path) -> None:
    write_manifest(
        tmp_path,
        """
        [services.hello]
        command = "echo hi; echo oops >&2"
        shell = true
        restart = "never"

        [services.worker]
        command = "sh -c 'echo bye; exit 1'"
        restart = "never"
    """,
    )
    tuisup = Tuisup("--no-tui", cwd=tmp_path)
    assert tuisup.finish() == 1
    out = tuisup.lines
    assert "hello  | hi" in out and "hello  | oops" in out and "worker | bye" in out
    assert any(line.startswith("hello started (pid ") for line in out)
    assert any(line.startswith("worker exited with code 1 after ") for line in out)
    assert not any("\x1b" in line for line in out), "no escape codes when piped"
    assert out[-1] == "tuisup: every service stopped"
    logged = (tmp_path / ".tuisup" / "logs" / "hello.log").read_text().splitlines()
    assert untimed(logged) == ["hi", "oops"]


def test_every_service_succeeding_exits_zero(tmp_path: Path) -> None:
    write_manifest(
        tmp_path,
        """
        [services.a]
        command = "true"
        [services.b]
        command = "sh -c 'exit 3'"
        success_exit_codes = [0, 3]
    """,
    )
    assert Tuisup("--no-tui", cwd=tmp_path).finish() == 0


def test_output_to_a_file_is_written_whole_and_in_order(tmp_path: Path) -> None:
    """A file takes the printer's writes from the loop: nothing lost, nothing reordered."""
    write_manifest(
        tmp_path,
        """
        [services.count]
        command = "seq 1 3000"
        restart = "never"
    """,
    )
    with open(tmp_path / "out.txt", "w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "tuisup", "--no-tui"],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert (done.returncode, done.stderr) == (0, "")
    lines = (tmp_path / "out.txt").read_text().splitlines()
    assert [line for line in lines if line.startswith("count | ")] == [
        f"count | {n}" for n in range(1, 3001)
    ]
    assert lines[-1] == "tuisup: every service stopped"


def test_a_full_disk_under_stdout_is_said_once_and_the_services_keep_running(
    tmp_path: Path, token: str
) -> None:
    write_manifest(
        tmp_path,
        """
        [services.chatty]
        command = "while true; do echo line; sleep 0.01; done"
        shell = true
        env = { TUISUP_TEST_TOKEN = "@TOKEN@" }
    """,
        token,
    )
    with open("/dev/full", "w") as full:  # every write: ENOSPC
        proc = subprocess.Popen(
            [sys.executable, "-m", "tuisup", "--no-tui"],
            cwd=tmp_path,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
        )
    try:
        deadline = time.monotonic() + 10
        while not list(tagged_pids(token)):
            assert time.monotonic() < deadline, "chatty never started"
            time.sleep(0.01)
        time.sleep(0.3)  # a few dozen lines, each a failed write
        assert proc.poll() is None, "tuisup died of a full disk"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert err == "tuisup: cannot write the output: No space left on device\n"


def test_lifecycle_lines_describe_backoff_and_the_spent_budget(tmp_path: Path) -> None:
    write_manifest(
        tmp_path,
        """
        [services.web]
        command = "sh -c 'exit 1'"
        backoff = "fixed"
        backoff_delay = 0.01
        jitter = 0
        max_restarts = 2
    """,
    )
    tuisup = Tuisup("--no-tui", "-f", "services.toml", cwd=tmp_path)
    assert tuisup.finish() == 1
    lifecycle = [line for line in tuisup.lines if not line.startswith("web |")]
    assert lifecycle[1].startswith("web exited with code 1 after ")
    assert lifecycle[1].endswith("; restarting in 0.0s (attempt 1)")
    assert "attempt 2" in lifecycle[3]
    assert lifecycle[-3] == "web failed: 2 restarts in 60s"


def test_json_mode_prints_one_parseable_event_per_line(tmp_path: Path) -> None:
    write_manifest(
        tmp_path,
        """
        [services.say]
        command = "printf 'one\\ntwo\\n'"
        shell = true
        restart = "never"
    """,
    )
    tuisup = Tuisup("--no-tui", "--json", cwd=tmp_path)
    assert tuisup.finish() == 0
    events = [json.loads(line) for line in tuisup.lines]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert all({"seq", "ts", "event"} <= e.keys() for e in events)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "host_started" and kinds[-1] == "host_stopped"
    states = [e for e in events if e["event"] == "state"]
    assert [e["state"] for e in states] == ["starting", "running", "exited"]
    assert states[1]["pid"] > 0 and states[2]["exit_code"] == 0
    assert all(e["service"] == "say" for e in states)
    output = [e for e in events if e["event"] == "output"]
    assert [line for e in output for line in e["lines"]] == ["one", "two"]
    assert all(e["stream"] == "stdout" for e in output)


def test_headless_mode_never_imports_textual(tmp_path: Path) -> None:
    write_manifest(
        tmp_path,
        """
        [services.a]
        command = "true"
    """,
    )
    code = (
        "import sys\n"
        "from tuisup.cli import main\n"
        "rc = main(['--no-tui'])\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'textual')\n"
        "print('TEXTUAL:', loaded)\n"
        "sys.exit(rc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert "TEXTUAL: []" in done.stdout


def test_headless_imports_only_what_the_manifest_uses(tmp_path: Path) -> None:
    """Regression: a start imported what this manifest does not use: `shutil` (argparse,
    for its help's width), `secrets` (one random tag), the file watching of services that
    watch nothing, `random` (for jitter, before any restart), the services' link to the
    host (for the name of one variable); a user waits for every import before the first
    service starts."""
    write_manifest(
        tmp_path,
        """
        [services.a]
        command = "true"
    """,
    )
    unused = (
        "shutil",
        "secrets",
        "watchfiles",
        "tuisup.engine.service_watch",
        "tuisup.engine.executors.inprocess",
        "tuisup.service",
        "tuisup.link",
        "random",
        "textual",
    )
    code = (
        "import sys\n"
        "from tuisup.cli import main\n"
        "rc = main(['--no-tui'])\n"
        f"print('LOADED:', sorted(m for m in {unused!r} if m in sys.modules))\n"
        "sys.exit(rc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert "LOADED: []" in done.stdout, done.stdout


def test_sigint_stops_everything_and_exits_zero(tmp_path: Path, token: str) -> None:
    write_manifest(
        tmp_path,
        """
        [services.a]
        command = "sleep 60 & sleep 61; wait"
        shell = true
        env = { TUISUP_TEST_TOKEN = "@TOKEN@" }
        [services.b]
        command = "sleep 62"
        env = { TUISUP_TEST_TOKEN = "@TOKEN@" }
    """,
        token,
    )
    tuisup = Tuisup("--no-tui", cwd=tmp_path)
    tuisup.expect(lambda line: line.startswith("a started"))
    tuisup.expect(lambda line: line.startswith("b started"))
    tuisup.proc.send_signal(signal.SIGINT)
    assert tuisup.finish() == 0
    assert any(line.startswith("tuisup: stopping 2 services (SIGINT") for line in tuisup.lines)
    assert not list(tagged_pids(token))


def test_a_second_sigint_kills_at_once(tmp_path: Path, token: str) -> None:
    write_manifest(
        tmp_path,
        """
        [services.stubborn]
        command = "trap '' TERM INT; echo ready; sleep 60"
        shell = true
        stop_timeout = 30
        env = { TUISUP_TEST_TOKEN = "@TOKEN@" }
    """,
        token,
    )
    tuisup = Tuisup("--no-tui", cwd=tmp_path)
    tuisup.expect(lambda line: line.endswith("| ready"))
    tuisup.proc.send_signal(signal.SIGINT)
    tuisup.expect(lambda line: line.startswith("tuisup: stopping"))
    began = time.monotonic()
    tuisup.proc.send_signal(signal.SIGINT)
    assert tuisup.finish() == 0
    assert time.monotonic() - began < 5
    assert not list(tagged_pids(token))


def test_sigkill_of_tuisup_takes_every_service_tree_with_it(tmp_path: Path, token: str) -> None:
    (tmp_path / "daemon.py").write_text(
        "import os, time\nif os.fork(): os._exit(0)\nos.setsid()\ntime.sleep(60)\n"
    )
    daemon = f"{sys.executable} daemon.py"
    write_manifest(
        tmp_path,
        f"""
        [services.orphan]
        command = "sleep 60"
        env = {{ TUISUP_TEST_TOKEN = "@TOKEN@" }}

        [services.tree]
        command = "sleep 61 & {daemon}; echo ready; sleep 62"
        shell = true
        env = {{ TUISUP_TEST_TOKEN = "@TOKEN@" }}
    """,
        token,
    )
    tuisup = Tuisup("--no-tui", cwd=tmp_path)
    tuisup.expect(lambda line: line == "tree   | ready")
    sigkill_leaves_nothing(tuisup, token, 5)  # sleep 60, sh, sleep 61, daemon, sleep 62


def test_sigkill_of_tuisup_takes_a_running_health_check_with_it(tmp_path: Path, token: str) -> None:
    write_manifest(
        tmp_path,
        """
        [services.svc]
        command = "sleep 60"
        env = { TUISUP_TEST_TOKEN = "@TOKEN@" }
        healthcheck = { command = "sleep 63 & exec sleep 64", timeout = 30 }
    """,
        token,
    )
    tuisup = Tuisup("--no-tui", cwd=tmp_path)
    tuisup.expect(lambda line: line.startswith("svc started"))
    sigkill_leaves_nothing(tuisup, token, 3)  # the service, the check and its child


def sigkill_leaves_nothing(tuisup: Tuisup, token: str, processes: int) -> None:
    """Once `processes` tagged processes run, SIGKILL tuisup: none may outlive it by 2 s."""
    deadline = time.monotonic() + 5
    while len(list(tagged_pids(token))) < processes:
        assert time.monotonic() < deadline, list(tagged_pids(token))
        time.sleep(0.01)
    tuisup.proc.kill()
    tuisup.finish()
    deadline = time.monotonic() + 2
    while list(tagged_pids(token)):
        assert time.monotonic() < deadline, "a process outlived tuisup"
        time.sleep(0.01)


def test_check_reports_ok_and_counts_services(tmp_path: Path) -> None:
    write_manifest(
        tmp_path,
        """
        [services.a]
        command = "true"
        [services.b]
        command = "true"
    """,
    )
    done = subprocess.run(
        [sys.executable, "-m", "tuisup", "check"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode, done.stdout) == (0, "ok: 2 services\n")


def test_a_bad_manifest_starts_nothing_and_exits_one_without_a_traceback(tmp_path: Path) -> None:
    write_manifest(
        tmp_path,
        """
        [services.web]
        command = "sleep 60"
        restart = "yes"
    """,
    )
    for args in (["check"], ["--no-tui"], ["--no-tui", "--json"]):
        done = subprocess.run(
            [sys.executable, "-m", "tuisup", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 1
        assert done.stderr == (
            'services.toml:4:11: services.web.restart: expected one of "always", "on-failure", '
            '"never", got "yes"\n'
        )
        assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize("args", [["--bogus"], ["--json"], ["check", "extra"]])
def test_usage_errors_exit_two(tmp_path: Path, args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tuisup", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "usage:" in done.stderr


def test_headless_lines_say_what_a_service_waits_for_and_its_health(tmp_path: Path) -> None:
    write_manifest(
        tmp_path,
        """
        [services.db]
        command = "sleep 0.3; touch up; exec sleep 30"
        shell = true
        healthcheck = { command = "test -e up", interval = 0.2 }

        [services.job]
        command = "echo done"
        depends_on = { db = "healthy" }
        restart = "never"

        [services.blocked]
        command = "echo never"
        depends_on = { gate = "completed" }

        [services.gate]
        command = "exit 2"
        shell = true
        restart = "never"
    """,
    )
    tuisup = Tuisup("--no-tui", cwd=tmp_path)
    tuisup.expect(lambda line: line == "job exited with code 0 after 0.0s")
    tuisup.proc.send_signal(signal.SIGINT)
    assert tuisup.finish() == 0
    lines = tuisup.lines
    assert "job waiting for db to be healthy (running, health unknown)" in lines
    done = next(i for i, line in enumerate(lines) if line.split() == ["job", "|", "done"])
    assert lines.index("db is healthy") < done
    assert "blocked failed: dependency gate exited with code 2" in lines
    assert not any(line.split()[:2] == ["blocked", "|"] for line in lines)


def test_json_mode_carries_health_changes(tmp_path: Path) -> None:
    write_manifest(
        tmp_path,
        """
        [services.svc]
        command = "sleep 30"
        healthcheck = { command = "echo broken; exit 1", interval = 0.1, retries = 2 }
    """,
    )
    tuisup = Tuisup("--no-tui", "--json", cwd=tmp_path)
    line = tuisup.expect(lambda line: '"event": "health"' in line)
    tuisup.proc.send_signal(signal.SIGINT)
    tuisup.finish()
    event = json.loads(line)
    assert event["service"] == "svc"
    assert (event["old"], event["health"]) == ("unknown", "unhealthy")
    assert event["reason"] == "exit code 1: broken" and event["failures"] == 2
