"""A scale is a reload for the bus's observers: the metrics and the hooks follow it too.

Regression: both resynced on `manifest_reloaded` (and `missed`) only. After `Host.scale`,
the metrics had no series for the new replicas and kept the removed ones'; the hooks kept
a removed replica's last state, and gave it to the replica made again under its name.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import anyio

from tests.conftest import wait_event, wait_until
from tests.integration.test_hooks import DUMP
from tests.integration.test_metrics import free_port, scraped_until, value
from tuisup.engine import Host, ServiceState
from tuisup.engine.events import FilesChanged, HookRan
from tuisup.manifest import load_manifest

S = ServiceState


def write(path: Path, text: str, **values: object) -> Path:
    path.write_text(textwrap.dedent(text).format(**values))
    return path


async def test_metrics_have_a_series_for_each_replica_a_scale_made_and_none_for_those_it_removed(
    tmp_path: Path, token: str
) -> None:
    port = free_port()
    manifest = """
        [tuisup]
        metrics = "127.0.0.1:{port}"

        [services.worker]
        command = "sleep 60"
        replicas = 1
        env = {{ TUISUP_TEST_TOKEN = "{token}" }}
    """
    path = write(tmp_path / "services.toml", manifest, port=port, token=token)
    async with Host(load_manifest(path), watch=False) as host:
        await wait_until(host, lambda s: s["worker.0"].state is S.RUNNING)
        await host.scale("worker", 3)
        await wait_until(host, lambda s: all(v.state is S.RUNNING for v in s.values()))
        found = await scraped_until(
            port, lambda f: value(f, "tuisup_service_up", service="worker.2") == 1
        )
        assert value(found, "tuisup_service_up", service="worker.1") == 1

        await host.scale("worker", 1)
        found = await scraped_until(
            port, lambda f: value(f, "tuisup_service_up", service="worker.2") is None
        )
        assert value(found, "tuisup_service_up", service="worker.1") is None
        assert value(found, "tuisup_service_up", service="worker.0") == 1


async def test_a_replica_a_scale_made_again_is_not_given_the_removed_ones_state_by_its_hooks(
    tmp_path: Path, token: str
) -> None:
    (tmp_path / "dumps").mkdir()
    (tmp_path / "dump.py").write_text(DUMP)
    (tmp_path / "watched.txt").write_text("")
    hook = json.dumps([sys.executable, str(tmp_path / "dump.py"), str(tmp_path / "dumps")])
    manifest = """
        [services.worker]
        command = "true"
        replicas = 2
        autostart = false
        restart = "never"
        watch = ["watched.txt"]
        on.files_changed = {hook}
        env = {{ TUISUP_TEST_TOKEN = "{token}" }}
    """
    path = write(tmp_path / "services.toml", manifest, hook=hook, token=token)
    async with Host(load_manifest(path), watch=False) as host:
        await host.start("worker.1")
        await wait_until(host, lambda s: s["worker.1"].state is S.EXITED)
        await host.scale("worker", 1)  # exited: stopping it changes no state, says nothing
        await host.scale("worker", 2)  # a new worker.1, never started
        assert host.snapshot()["worker.1"].state is S.STOPPED
        after = host.bus.last_seq

        def saved(e: object) -> bool:
            return isinstance(e, FilesChanged) and e.service == "worker.1"

        with anyio.fail_after(10):  # the watcher starts in a thread: save until it sees one
            while not any(saved(e) for e in host.bus.since(after)):
                (tmp_path / "watched.txt").write_text(f"{host.bus.last_seq}")
                with anyio.move_on_after(1.0):
                    await wait_event(host, saved, after)
        await wait_event(host, lambda e: isinstance(e, HookRan) and e.service == "worker.1", after)
    dumps = [json.loads(p.read_text()) for p in (tmp_path / "dumps").iterdir()]
    states = {d["TUISUP_STATE"] for d in dumps if d["TUISUP_SERVICE"] == "worker.1"}
    assert states == {"stopped"}  # not `exited`: the removed worker.1's last state
