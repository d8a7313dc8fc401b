"""Regressions: `tuisup scale` and the names and counts it is given.

A group's name was answered `unknown service "g" (did you mean "g"?)`; a name given twice
was scaled twice and printed what the first asked (`worker scaled to 1 (3 running)`); and a
count in other digits than ASCII's was taken (`worker=٣` for 3; `worker=³` was a traceback).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import tagged_pids
from tests.control.verbs import eventually, headless, tuisup, write

GROUPED = """
[services.worker]
command = "sleep 300"
replicas = 1
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[services.web]
command = "sleep 301"
port = 39301  # a table with a port but no replicas cannot be scaled: not suggested
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[groups.g]
services = ["worker", "web"]
"""


def test_scale_says_a_group_is_not_a_replicated_service(tmp_path: Path, token: str) -> None:
    write(tmp_path, token, GROUPED)
    host = headless(tmp_path, "worker.0", "web")
    done = tuisup("scale", "g=2", cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        "tuisup: cannot scale g: it is a group, not a replicated service (scale worker)\n"
    )
    done = tuisup("scale", "g=2", "--json", cwd=tmp_path)
    assert done.returncode == 1
    assert json.loads(done.stdout)[0]["error"]["code"] == "cannot_scale"
    done = tuisup("scale", "wroker=2", cwd=tmp_path)  # a plain typo keeps its suggestion
    assert done.stderr == 'tuisup: unknown service "wroker" (did you mean "worker"?)\n'
    host.proc.terminate()
    assert host.finish() == 0


def test_scale_refuses_a_name_given_twice_and_a_count_not_in_ascii_digits(
    tmp_path: Path, token: str
) -> None:
    write(tmp_path, token, GROUPED)
    host = headless(tmp_path, "worker.0", "web")
    done = tuisup("scale", "worker=1", "worker=3", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "tuisup: worker is named twice: give each one count\n"
    for count in ("\u0663", "\u00b3", "+3", " 3", "3.0", ""):
        done = tuisup("scale", f"worker={count}", cwd=tmp_path)
        assert (done.returncode, done.stdout) == (1, ""), count
        assert done.stderr == (
            f'tuisup: expected NAME=N (such as worker=3), got "worker={count}"\n'
        ), count
    done = tuisup("scale", "worker=" + "1" * 5000, cwd=tmp_path)  # past int()'s digits
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert len(set(tagged_pids(token))) == 2  # nothing was scaled
    done = tuisup("scale", "worker=2", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "worker scaled to 2 (2 running)\n")
    eventually(lambda: len(set(tagged_pids(token))) == 3)
    host.proc.terminate()
    assert host.finish() == 0
