"""`tuisup scale NAME=N` against a real headless host, over the control socket."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import tagged_pids
from tests.control.verbs import eventually, headless, tuisup, write

WORKERS = """
[services.worker]
command = "sleep 300"
replicas = 1
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[services.web]
command = "sleep 301"
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }
"""


def test_scale_runs_n_replicas_and_says_what_it_could_not(tmp_path: Path, token: str) -> None:
    write(tmp_path, token, WORKERS)
    host = headless(tmp_path, "worker.0", "web")
    first = set(tagged_pids(token))
    done = tuisup("scale", "worker=3", cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "worker scaled to 3 (3 running)\n",
        "",
    )
    host.expect(lambda line: "scaled worker to 3 (added worker.1, worker.2)" in line)
    eventually(lambda: len(set(tagged_pids(token))) == 4)
    assert first <= set(tagged_pids(token))

    done = tuisup("scale", "worker=2", "web=2", "--json", cwd=tmp_path)
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report[0] == {"service": "worker", "ok": True, "replicas": 2}
    assert report[1]["error"] == {
        "code": "cannot_scale",
        "message": "cannot scale web: web has no replicas key: add replicas = 1 to its table",
    }
    done = tuisup("scale", "worker", cwd=tmp_path)
    assert (
        done.returncode == 1 and 'expected NAME=N (such as worker=3), got "worker"' in done.stderr
    )
    done = tuisup("stop", "worker", cwd=tmp_path)  # a table's name stands for its replicas
    assert done.returncode == 0, done.stderr
    eventually(lambda: len(set(tagged_pids(token))) == 1)
    host.proc.terminate()
    assert host.finish() == 0
