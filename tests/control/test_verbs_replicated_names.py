"""A replicated service's name stands for its replicas in `ps`, `logs` and `events` too.

Regression: `stop worker` took it, but `ps worker`, `logs worker` and a subscription to
`worker` answered `unknown service "worker" (did you mean "worker.1"?)`.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.control.raw import Raw
from tests.control.verbs import eventually, headless, tuisup, write

WORKERS = """
[services.worker]
command = "sh -c 'echo hello from $TUISUP_REPLICA; exec sleep 300'"
replicas = 2
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[services.web]
command = "sh -c 'echo hello from web; exec sleep 301'"
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }
"""


def test_ps_and_logs_take_a_replicated_services_name_for_its_replicas(
    tmp_path: Path, token: str
) -> None:
    write(tmp_path, token, WORKERS)
    host = headless(tmp_path, "worker.0", "worker.1", "web")
    done = tuisup("ps", "worker", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [view["service"] for view in json.loads(done.stdout)] == ["worker.0", "worker.1"]

    def logged() -> list[str]:
        done = tuisup("logs", "worker", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return sorted(line for line in done.stdout.splitlines() if "hello" in line)

    eventually(lambda: len(logged()) == 2, what="both replicas' lines")
    assert all("web" not in line for line in logged())
    done = tuisup("logs", "worker", "worker.0", cwd=tmp_path)  # worker.0's lines once
    assert sum("hello from 0" in line for line in done.stdout.splitlines()) == 1
    done = tuisup("ps", "wroker", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == 'tuisup: unknown service "wroker" (did you mean "worker"?)\n'
    host.proc.terminate()
    assert host.finish() == 0
    assert len(logged()) == 2  # from the log files, with no host


async def test_a_subscription_to_a_replicated_services_name_follows_its_replicas(
    tmp_path: Path, token: str
) -> None:
    write(tmp_path, token, WORKERS)
    host = headless(tmp_path, "worker.0", "worker.1", "web")
    raw = await Raw.connect(tmp_path / ".tuisup" / "tuisup.sock")
    answer = await raw.result("subscribe", services=["worker"])
    assert [view["service"] for view in answer["snapshot"]] == ["worker.0", "worker.1"]
    await raw.result("restart", name="web")  # not selected: its events never come
    await raw.result("restart", name="worker.1")
    seen = await raw.events(1, lambda e: e["event"] == "state" and e["state"] == "running")
    assert {e["service"] for e in seen if "service" in e} == {"worker.1"}
    await raw.aclose()
    host.proc.terminate()
    assert host.finish() == 0
