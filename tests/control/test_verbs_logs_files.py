"""`tuisup logs` reads the log files, rotated ones too, when no tuisup runs; and filters alike."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import Tuisup
from tests.control.verbs import headless, tuisup, write

ROTATING = """
[tuisup]
log_max_bytes = 1000
log_backups = 20

[services.count]
command = "sh -c 'seq 1 400; echo done; exec sleep 300'"
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[services.other]
command = "sh -c 'echo other one; echo other 100; exec sleep 301'"
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }
log_format = "json"
"""
"""`count` writes 1,600 bytes: its lines lie in several rotated files."""


def lines_of(stdout: str, service: str) -> list[str]:
    prefix = f"{service} | "
    return [line.removeprefix(prefix) for line in stdout.splitlines() if line.startswith(prefix)]


def both_done(host: Tuisup) -> None:
    """Wait until both services have written all they write (in either order)."""
    seen: set[str] = set()
    last = {"count | done", "other | other 100"}
    host.expect(lambda line: seen.add(line) or last <= seen)


def run_and_stop(tmp_path: Path, token: str) -> None:
    write(tmp_path, token, ROTATING)
    host = headless(tmp_path, "count", "other")
    both_done(host)
    host.proc.send_signal(signal.SIGINT)
    assert host.finish() == 0


def test_with_no_tuisup_running_logs_reads_every_rotated_file_in_order(
    tmp_path: Path, token: str
) -> None:
    run_and_stop(tmp_path, token)
    assert len(list((tmp_path / ".tuisup" / "logs").glob("count.log.*"))) >= 3
    done = tuisup("logs", "count", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    numbers = [line for line in lines_of(done.stdout, "count") if line.isdigit()]
    assert numbers == [str(n) for n in range(1, 401)]
    last = tuisup("logs", "count", "-n", "3", cwd=tmp_path)
    assert lines_of(last.stdout, "count")[-2:] == ["400", "done"]
    assert len(last.stdout.splitlines()) == 3


def test_grep_since_and_json_from_the_files(tmp_path: Path, token: str) -> None:
    run_and_stop(tmp_path, token)
    found = tuisup("logs", "--grep", "^(3.7|other .*)$", "--since", "10m", cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    assert lines_of(found.stdout, "count") == [str(n) for n in range(307, 398, 10)]
    assert lines_of(found.stdout, "other") == ["other one", "other 100"]
    none = tuisup("logs", "--since", "2099-01-01T00:00:00+00:00", cwd=tmp_path)
    assert (none.returncode, none.stdout) == (0, "")
    data = tuisup("logs", "other", "--json", cwd=tmp_path)
    batches = [json.loads(line) for line in data.stdout.splitlines()]
    assert [line for b in batches if b["stream"] == "stdout" for line in b["lines"]] == [
        "other one",
        "other 100",
    ]


def test_a_running_tuisup_and_the_files_answer_alike(tmp_path: Path, token: str) -> None:
    write(tmp_path, token, ROTATING)
    host = headless(tmp_path, "count", "other")
    both_done(host)
    asked = ("logs", "count", "--grep", "^(3.7|other .*|done)$", "-n", "4")
    running = tuisup(*asked, cwd=tmp_path)
    host.proc.send_signal(signal.SIGINT)
    assert host.finish() == 0
    stopped = tuisup(*asked, cwd=tmp_path)
    assert running.returncode == stopped.returncode == 0, (running.stderr, stopped.stderr)
    assert lines_of(running.stdout, "count") == lines_of(stopped.stdout, "count")
    assert lines_of(running.stdout, "count") == ["377", "387", "397", "done"]
    assert running.stdout == stopped.stdout


def test_bad_filters_and_names_are_said_plainly(tmp_path: Path, token: str) -> None:
    run_and_stop(tmp_path, token)
    bad = tuisup("logs", "--since", "yesterday", cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.startswith("tuisup: --since: expected a duration")
    bad = tuisup("logs", "--grep", "(", cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.startswith("tuisup: --grep: ")
    unknown = tuisup("logs", "cuont", cwd=tmp_path)
    assert unknown.returncode == 1 and '"cuont"' in unknown.stderr and "count" in unknown.stderr
    follow = tuisup("logs", "-f", "count", "-n", "1", cwd=tmp_path)
    assert follow.returncode == 3 and lines_of(follow.stdout, "count") == ["done"]


def test_logs_from_the_files_load_neither_anyio_textual_nor_the_engine(
    tmp_path: Path, token: str
) -> None:
    run_and_stop(tmp_path, token)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tuisup", "logs", "-n", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 1, done.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()]
    loaded = [m for m in imported if m.startswith(("anyio", "textual", "tuisup.engine"))]
    assert loaded == []


def test_json_lines_with_bytes_that_are_not_utf8_print_as_the_console_shows_them(
    tmp_path: Path, token: str
) -> None:
    write(
        tmp_path,
        token,
        """
        [tuisup]
        log_format = "json"

        [services.bad]
        command = "printf 'caf\\\\303\\\\251 \\\\377 end\\\\n'"
        shell = true
        restart = "never"
        """,
    )
    host = headless(tmp_path)
    assert host.finish() == 0
    done = tuisup("logs", "bad", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert lines_of(done.stdout, "bad") == ["café \ufffd end"]
