"""The verbs as a user runs them (`python -m tuisup VERB`) against a real headless host."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Tuisup, tagged_pids
from tests.control.verbs import eventually, headless, tuisup, write

NO_HOST = "no tuisup is running for ./services.toml (start one with: tuisup up -d)\n"


def states(folder: Path) -> dict[str, str]:
    done = tuisup("ps", "--json", cwd=folder)
    assert done.returncode == 0, done.stderr
    return {view["service"]: view["state"] for view in json.loads(done.stdout)}


def test_every_verb_says_no_host_and_exits_3(tmp_path: Path, token: str) -> None:
    write(tmp_path, token)
    verbs = (["ps"], ["restart", "web"], ["logs", "-f"], ["events"], ["reload"], ["down"])
    for verb in (*verbs, ["attach"]):
        done = tuisup(*verb, cwd=tmp_path)
        assert (done.returncode, done.stderr, done.stdout) == (3, NO_HOST, ""), verb
    done = tuisup("-f", "other.toml", "ps", cwd=tmp_path)
    assert done.returncode == 3
    assert done.stderr == (
        "no tuisup is running for ./other.toml (start one with: tuisup -f other.toml up -d)\n"
    )


def test_up_without_d_is_no_tui(tmp_path: Path, token: str) -> None:
    write(tmp_path, token)
    host = Tuisup("up", "--json", cwd=tmp_path)
    started = host.expect(lambda line: json.loads(line).get("state") == "running")
    assert json.loads(started)["event"] == "state"
    assert tuisup("ps", cwd=tmp_path).returncode == 0
    host.proc.send_signal(signal.SIGTERM)
    assert host.finish() == 0
    assert not list(tagged_pids(token))


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    done = tuisup("restrat", "web", cwd=tmp_path)
    assert done.returncode == 2
    assert 'unknown verb "restrat" (did you mean "restart"?)' in done.stderr
    done = tuisup("restart", cwd=tmp_path)
    assert done.returncode == 2 and "name the services, or give --all" in done.stderr
    done = tuisup("stop", "web", "--all", cwd=tmp_path)
    assert done.returncode == 2


def test_ps_shows_every_service_and_json_says_it_for_scripts(tmp_path: Path, token: str) -> None:
    write(tmp_path, token)
    host = headless(tmp_path, "db", "web", "api")
    done = tuisup("ps", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "NAME", "STATE", "PID", "RESTARTS", "UPTIME", "HEALTH", "LAST", "EXIT", "WAITING", "FOR"
    ]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert list(rows) == ["db", "api", "web", "broken"]
    assert rows["web"][1] == "running" and rows["web"][2].isdigit()
    assert rows["broken"][1:3] == ["stopped", "-"]
    views = json.loads(tuisup("ps", "--json", "web", cwd=tmp_path).stdout)
    assert [v["service"] for v in views] == ["web"]
    assert views[0]["state"] == "running" and views[0]["spec"]["command"].startswith("sh -c")
    wrong = tuisup("ps", "wbe", cwd=tmp_path)
    assert wrong.returncode == 1
    assert wrong.stderr == 'tuisup: unknown service "wbe" (did you mean "web"?)\n'
    assert host.proc.poll() is None


def test_commands_wait_and_say_what_else_moved(tmp_path: Path, token: str) -> None:
    write(tmp_path, token)
    headless(tmp_path, "db", "web", "api")
    done = tuisup("stop", "db", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "db: stopped first api, which depends on it\ndb stopped\n"
    assert states(tmp_path) | {"web": "-", "broken": "-"} == {
        "db": "stopped", "api": "stopped", "web": "-", "broken": "-"
    }  # fmt: skip
    done = tuisup("start", "api", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("api: started first db, which it needs\napi ")
    old = json.loads(tuisup("ps", "--json", "web", cwd=tmp_path).stdout)[0]["pid"]
    done = tuisup("restart", "web", "--json", cwd=tmp_path)
    [entry] = json.loads(done.stdout)
    assert done.returncode == 0 and entry["ok"] and entry["service"] == "web"
    assert entry["state"] == "running" and entry["pid"] != old  # it runs again: waited for
    done = tuisup("start", "broken", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.startswith("broken failed: cannot start: ")
    done = tuisup("restart", "web", "wbe", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == 'tuisup: unknown service "wbe" (did you mean "web"?)\n'
    assert re.fullmatch(r"web running \(pid \d+\)\n", done.stdout)
    done = tuisup("kill", "web", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("web killed (SIGKILL")


def test_stop_all_leaves_the_host_up_for_start_all(tmp_path: Path, token: str) -> None:
    """Regression: a headless host took `stop --all` for its services ending, and exited."""
    write(tmp_path, token)
    host = headless(tmp_path, "db", "web", "api")
    done = tuisup("stop", "--all", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert {e["service"]: e["state"] for e in json.loads(done.stdout)} == {
        "db": "stopped", "api": "stopped", "web": "stopped", "broken": "stopped"
    }  # fmt: skip
    assert not list(tagged_pids(token))
    done = tuisup("start", "web", "--no-wait", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "web: start asked\n")
    host.expect(lambda line: line.startswith("web started (pid "))  # once the client had left
    done = tuisup("start", "--all", cwd=tmp_path)
    assert done.returncode == 1  # broken cannot start
    said = [line.split()[:2] for line in done.stdout.splitlines()]
    assert said[0] == ["db", "running"] and said[2] == ["web", "running"]
    assert said[1][0] == "api" and said[1][1] in ("running", "waiting")  # for db to be up
    assert said[3] == ["broken", "failed:"]
    assert host.proc.poll() is None


def test_start_all_without_waiting_starts_every_service(tmp_path: Path, token: str) -> None:
    """Regression: `--no-wait` sent its commands and left; the first answer the host could
    not write cut the connection off, and the commands not begun yet were lost."""
    write(tmp_path, token)
    host = headless(tmp_path, "db", "web", "api")
    assert tuisup("stop", "--all", cwd=tmp_path).returncode == 0
    done = tuisup("start", "--all", "--no-wait", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    begun = len(host.lines)
    wanted = {"db started (pid ", "web started (pid ", "api started (pid ", "broken failed: "}

    def all_seen(line: str) -> bool:  # each in its own time, after the client left
        seen = {w for w in wanted for said in host.lines[begun:] + [line] if said.startswith(w)}
        return seen == wanted

    host.expect(all_seen)


def test_logs_print_kept_lines_and_follow_until_the_host_stops(tmp_path: Path, token: str) -> None:
    write(tmp_path, token)
    host = headless(tmp_path, "db", "web", "api")
    if "web    | web says hi" not in host.lines:
        host.expect(lambda line: line.endswith("| web says hi"))
    done = tuisup("logs", "web", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "web | web says hi\n")
    [batch] = json.loads("[" + tuisup("logs", "--json", cwd=tmp_path).stdout.strip() + "]")
    assert batch["service"] == "web" and batch["lines"] == ["web says hi"]
    follower = Tuisup("logs", "-f", "--timestamps", "web", "db", cwd=tmp_path)
    follower.expect(lambda line: line.endswith(" web says hi"))
    assert tuisup("restart", "web", cwd=tmp_path).returncode == 0
    marker = follower.expect(lambda line: "── run 2 · stopped after" in line)
    assert re.match(r"web \| \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ── run 2", marker)
    follower.expect(lambda line: line.endswith(" web says hi"))
    assert tuisup("down", cwd=tmp_path).returncode == 0
    assert follower.finish() == 0
    assert host.finish() == 0


def test_events_stream_until_the_host_stops(tmp_path: Path, token: str) -> None:
    write(tmp_path, token)
    headless(tmp_path, "db", "web", "api")
    follower = Tuisup("events", "--json", "web", cwd=tmp_path)
    first = json.loads(follower.expect(lambda line: True))
    assert first["event"] == "snapshot" and [v["service"] for v in first["services"]] == ["web"]
    text = Tuisup("events", cwd=tmp_path)
    text.expect(lambda line: line.startswith("web running (pid "))
    assert tuisup("restart", "web", cwd=tmp_path).returncode == 0
    follower.expect(lambda line: json.loads(line).get("state") == "running")
    text.expect(lambda line: line.startswith("web started (pid "))
    assert tuisup("down", cwd=tmp_path).returncode == 0
    assert follower.finish() == 0 and text.finish() == 0
    assert json.loads(follower.lines[-1])["event"] == "host_stopped"
    assert {json.loads(line).get("service", "web") for line in follower.lines[1:]} == {"web"}
    assert text.lines[-1] == "tuisup: every service stopped"


def test_reload_prints_the_summary_or_the_errors(tmp_path: Path, token: str) -> None:
    path = write(tmp_path, token)
    # The verb alone reloads: a host that watched its manifest could apply the edit first,
    # and the verb would then find nothing changed (seen under load).
    headless(tmp_path, "db", "web", "api", options=("--no-reload",))
    path.write_text(path.read_text() + '\n[services.extra]\ncommand = "sleep 303"\n')
    done = tuisup("reload", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "manifest reloaded: added extra\n")
    path.write_text(path.read_text() + "\n[services.bad]\ncomand = 1\n")
    done = tuisup("reload", "--json", cwd=tmp_path)
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["applied"] is False and "comand" in result["error"]
    done = tuisup("reload", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("tuisup: manifest not applied, every service left as it was:\n")


def test_down_stops_the_host_and_leaves_nothing(tmp_path: Path, token: str) -> None:
    write(tmp_path, token)
    host = headless(tmp_path, "db", "web", "api")
    done = tuisup("down", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "tuisup: every service stopped"
    assert host.proc.poll() is not None  # down returns once the host's process is gone
    assert not (tmp_path / ".tuisup" / "tuisup.sock").exists()
    assert not list(tagged_pids(token))
    assert tuisup("down", cwd=tmp_path).returncode == 3


@pytest.mark.parametrize("verb", ["ps", "restart"])
def test_a_verb_loads_neither_anyio_textual_nor_the_engine(
    tmp_path: Path, token: str, verb: str
) -> None:
    write(tmp_path, token)
    headless(tmp_path, "db", "web", "api")
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tuisup", verb, "web"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    modules = [line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line]
    assert "tuisup.control.client" in modules
    assert not [m for m in modules if m.split(".")[0] in ("anyio", "textual", "psutil")]
    assert not [m for m in modules if m.startswith(("tuisup.engine", "tuisup.manifest"))]


def test_two_clients_at_once(tmp_path: Path, token: str) -> None:
    write(tmp_path, token)
    headless(tmp_path, "db", "web", "api")
    logs = Tuisup("logs", "-f", "web", cwd=tmp_path)
    events = Tuisup("events", cwd=tmp_path)
    logs.expect(lambda line: line == "web | web says hi")
    events.expect(lambda line: line.startswith("web running"))
    restarts = [Tuisup("restart", name, cwd=tmp_path) for name in ("web", "db")]
    assert [r.finish() for r in restarts] == [0, 0]
    logs.expect(lambda line: "── run 2" in line)
    for name in ("web", "db"):
        if not any(line.startswith(f"{name} started") for line in events.lines):
            events.expect(lambda line, name=name: line.startswith(f"{name} started"))
    assert tuisup("down", cwd=tmp_path).returncode == 0
    assert logs.finish() == 0 and events.finish() == 0


def test_ps_of_a_hundred_services(tmp_path: Path, token: str) -> None:
    services = "".join(
        f'[services.s{i:03d}]\ncommand = "sleep {400 + i}"\n'
        f'env = {{ TUISUP_TEST_TOKEN = "{token}" }}\n'
        for i in range(100)
    )
    write(tmp_path, token, services)
    host = headless(tmp_path, *(f"s{i:03d}" for i in range(100)))
    done = tuisup("ps", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = done.stdout.splitlines()[1:]
    assert [row.split()[0] for row in rows] == [f"s{i:03d}" for i in range(100)]
    assert all(row.split()[1] == "running" for row in rows)
    assert tuisup("down", cwd=tmp_path).returncode == 0
    assert host.finish() == 0
    eventually(lambda: not list(tagged_pids(token)), what="every service gone")
