"""An unusable log folder or file is reported, never silent: by the host, headless and `check`."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from tests.conftest import RAW_LOGS, Tuisup, wait_event
from tuisup.engine import Host, ServiceState
from tuisup.spec import Manifest

S = ServiceState
WAIT_FOR = "until [ -e {0} ]; do sleep 0.02; done"
"""Shell: block the service until the test creates file {0} (in the service's cwd)."""


def kept(host: Host, service: str) -> list[str]:
    return [line for batch in host.store.since(service, 0) for line in batch.lines]


async def test_a_log_folder_deleted_while_running_is_made_again_and_said_so_once(
    make_manifest: Callable[..., Manifest], tmp_path: Path
) -> None:
    command = f"echo first; {WAIT_FOR.format('go')}; echo second; echo third; sleep 60"
    async with Host(make_manifest(web=(command, {"logs": RAW_LOGS}))) as host:
        log = tmp_path / "logs" / "web.log"
        await wait_event(host, lambda e: "first" in kept(host, "web"), 0)
        assert log.read_text() == "first\n"
        after = host.bus.last_seq
        shutil.rmtree(tmp_path / "logs")
        (tmp_path / "go").touch()
        await wait_event(host, lambda e: "third" in kept(host, "web"), after)
        marker = f"tuisup: {log} was deleted or moved away: writing a new one"
        assert log.read_text() == f"{marker}\nsecond\nthird\n"
        assert kept(host, "web") == ["first", marker, "second", "third"]
        news = [e.to_json() for e in host.bus.since(after) if e.kind == "log_file"]
        assert [(n["service"], n["path"], n["writing"], n["message"]) for n in news] == [
            ("web", str(log), True, marker.removeprefix("tuisup: "))
        ]
        assert host.snapshot()["web"].state is S.RUNNING


def manifest(tmp_path: Path, command: str) -> None:
    (tmp_path / "services.toml").write_text(
        textwrap.dedent(
            f"""\
            [tuisup]
            log_dir = "logs"

            [services.web]
            command = {json.dumps(command)}
            shell = true
            """
        )
    )


def stderr_of(tuisup: Tuisup) -> str:
    assert tuisup.proc.stderr is not None
    return tuisup.proc.stderr.read()


def test_headless_says_once_on_stderr_that_the_log_dir_is_a_file_and_keeps_the_lines(
    tmp_path: Path,
) -> None:
    manifest(
        tmp_path,
        f"{WAIT_FOR.format('go')}; echo one; echo two; {WAIT_FOR.format('go2')}; echo three; "
        "sleep 60",
    )
    tuisup = Tuisup("--no-tui", cwd=tmp_path)
    tuisup.expect(lambda line: line.startswith("web started"))
    (tmp_path / "logs").write_text("not a folder")  # after the start, which would refuse it
    (tmp_path / "go").touch()
    tuisup.expect(lambda line: line == "web | two")
    (tmp_path / "go2").touch()
    tuisup.expect(lambda line: line == "web | three")
    tuisup.proc.send_signal(signal.SIGINT)
    assert tuisup.finish() == 0
    assert not any(line.startswith("web exited") for line in tuisup.lines)
    assert stderr_of(tuisup) == (
        "tuisup: web: cannot write logs/web.log: Not a directory; lines are kept in memory only\n"
    )
    assert (tmp_path / "logs").read_text() == "not a folder"


def test_json_mode_carries_the_log_file_event(tmp_path: Path) -> None:
    manifest(tmp_path, f"{WAIT_FOR.format('go')}; echo one; sleep 60")
    tuisup = Tuisup("--no-tui", "--json", cwd=tmp_path)
    tuisup.expect(lambda line: json.loads(line).get("state") == "running")
    (tmp_path / "logs").write_text("")
    (tmp_path / "go").touch()
    line = tuisup.expect(lambda line: json.loads(line)["event"] == "log_file")
    event = json.loads(line)
    assert (event["service"], event["writing"], event["error"]) == ("web", False, "Not a directory")
    assert event["path"] == str((tmp_path / "logs" / "web.log").resolve())
    tuisup.expect(lambda line: json.loads(line).get("lines") == ["one"])
    tuisup.proc.send_signal(signal.SIGINT)
    assert tuisup.finish() == 0
    assert stderr_of(tuisup).count("\n") == 1


def test_check_and_start_refuse_a_log_dir_that_is_a_file(tmp_path: Path) -> None:
    manifest(tmp_path, "sleep 60")
    (tmp_path / "logs").write_text("")
    expected = (
        f"services.toml:2:11: tuisup.log_dir: {(tmp_path / 'logs').resolve()} is not a directory\n"
    )
    for args in (["check"], ["--no-tui"]):
        done = subprocess.run(
            [sys.executable, "-m", "tuisup", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert (done.returncode, done.stderr) == (1, expected), args
