"""Replicas in the console: one node per replicated table with a summary, its replicas under it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Tuisup, wait_until, write_manifest
from tests.tui.test_console import console, label, notification_text, until
from tuisup.engine import ServiceState
from tuisup.manifest import load_manifest
from tuisup.spec import Manifest
from tuisup.tui.widgets.service_tree import ServiceTree

S = ServiceState

WORKERS = """
[services.worker]
command = "sleep 60"
replicas = 3
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[services.web]
command = "sleep 61"
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }
"""


def load(tmp_path: Path, token: str, text: str = WORKERS) -> Manifest:
    return load_manifest(write_manifest(tmp_path, text, token))


async def test_a_replicated_table_is_one_node_with_a_summary_and_its_replicas_under_it(
    tmp_path: Path, token: str
) -> None:
    async with console(load(tmp_path, token)) as (host, app, pilot):
        await wait_until(host, lambda s: all(v.state is S.RUNNING for v in s.values()))
        tree = app.query_one(ServiceTree)
        node = tree.parents["worker"]
        await until(pilot, lambda: "3/3 running" in str(node.label))
        assert [child.data for child in node.children] == ["worker.0", "worker.1", "worker.2"]
        assert tree.nodes_by_name["web"].parent is tree.root
        await host.kill("worker.1")
        await wait_until(host, lambda s: s["worker.1"].restarts == 1)
        await wait_until(host, lambda s: s["worker.1"].state is S.RUNNING)
        await until(pilot, lambda: "3/3 running ×1" in str(node.label))
        assert "running" in label(app, "worker.1")

        await pilot.press("down")  # the host, then the table's node
        assert tree.selected_service == "worker"
        await pilot.press("x")  # stops every replica
        await wait_until(host, lambda s: all(s[f"worker.{i}"].state is S.STOPPED for i in range(3)))
        await until(pilot, lambda: "0/3 running" in str(node.label))
        assert host.snapshot()["web"].state is S.RUNNING


def test_json_events_carry_the_replica(tmp_path: Path, token: str) -> None:
    load(tmp_path, token)
    tuisup = Tuisup("--no-tui", "--json", cwd=tmp_path)
    line = tuisup.expect(lambda text: '"worker.2"' in text and '"running"' in text)
    event = json.loads(line)
    assert (event["service"], event["replica"]) == ("worker.2", 2)
    line = tuisup.expect(lambda text: '"web"' in text and '"running"' in text)
    assert "replica" not in json.loads(line)
    tuisup.proc.terminate()
    assert tuisup.finish() == 0


async def test_plus_and_minus_scale_the_selected_replicated_service(
    tmp_path: Path, token: str
) -> None:
    async with console(load(tmp_path, token)) as (host, app, pilot):
        await wait_until(host, lambda s: all(v.state is S.RUNNING for v in s.values()))
        before = {n: v.pid for n, v in host.snapshot().items()}
        tree = app.query_one(ServiceTree)
        tree.move_cursor(tree.nodes_by_name["worker.1"])
        await pilot.press("plus", "plus")
        await wait_until(host, lambda s: "worker.4" in s and s["worker.4"].state is S.RUNNING)
        node = tree.parents["worker"]
        await until(pilot, lambda: "5/5 running" in str(node.label))
        assert [child.data for child in node.children][-1] == "worker.4"
        await pilot.press("minus")
        await wait_until(host, lambda s: "worker.4" not in s)
        await until(pilot, lambda: "4/4 running" in str(node.label))
        now = host.snapshot()
        assert {n: now[n].pid for n in before} == before  # none of those restarted

        tree.move_cursor(tree.nodes_by_name["web"])
        await pilot.press("plus")
        await until(pilot, lambda: "web has no replicas key" in notification_text(app))


async def test_a_table_scaled_to_zero_keeps_its_node_and_plus_runs_one_again(
    tmp_path: Path, token: str
) -> None:
    text = WORKERS.replace("replicas = 3", "replicas = 1")
    async with console(load(tmp_path, token, text)) as (host, app, pilot):
        await wait_until(host, lambda s: all(v.state is S.RUNNING for v in s.values()))
        tree = app.query_one(ServiceTree)
        tree.move_cursor(tree.nodes_by_name["worker.0"])
        title = app.query_one("#log-title")
        await until(pilot, lambda: str(title.render()).startswith("worker.0"))
        await pilot.press("minus")
        await wait_until(host, lambda s: "worker.0" not in s)
        node = tree.parents["worker"]
        await until(pilot, lambda: "0/0 running" in str(node.label))
        assert str(title.render()).startswith("all services")  # as the log now shows
        assert "+ runs one" in str(node.label)
        assert not node.children and tree.selected_service == "worker"

        await pilot.press("plus")
        await wait_until(host, lambda s: "worker.0" in s and s["worker.0"].state is S.RUNNING)
        await until(pilot, lambda: "1/1 running" in str(node.label))
        assert tree.parents["worker"] is node
        assert [child.data for child in node.children] == ["worker.0"]


async def test_a_table_with_no_replicas_in_the_manifest_has_a_node_from_the_start(
    tmp_path: Path, token: str
) -> None:
    text = WORKERS.replace("replicas = 3", "replicas = 0")
    async with console(load(tmp_path, token, text)) as (host, app, pilot):
        tree = app.query_one(ServiceTree)
        await until(pilot, lambda: "worker" in tree.parents)
        node = tree.parents["worker"]
        await until(pilot, lambda: "0/0 running" in str(node.label))
        tree.move_cursor(node)
        await pilot.press("plus")
        await wait_until(host, lambda s: "worker.0" in s and s["worker.0"].state is S.RUNNING)
        await until(pilot, lambda: "1/1 running" in str(node.label))


GROUPED = """
[services.web]
command = "sleep 61"
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[services.worker]
command = "sleep 60"
replicas = 0
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[groups.g]
services = ["web", "worker"]
"""


async def test_a_grouped_table_with_no_replicas_sits_in_its_group_and_its_replica_under_it(
    tmp_path: Path, token: str
) -> None:
    async with console(load(tmp_path, token, GROUPED)) as (host, app, pilot):
        tree = app.query_one(ServiceTree)
        await until(pilot, lambda: "worker" in tree.parents)
        node, group = tree.parents["worker"], tree.parents["g"]
        assert node.parent is group
        tree.move_cursor(node)
        await pilot.press("plus")
        await wait_until(host, lambda s: "worker.0" in s and s["worker.0"].state is S.RUNNING)
        await until(pilot, lambda: "2/2 running" in str(group.label))
        assert tree.parents["worker"] is node and node.parent is group
        assert tree.nodes_by_name["worker.0"].parent is node


async def test_a_reload_to_no_replicas_keeps_the_node_in_its_place_and_the_cursor_on_it(
    tmp_path: Path, token: str
) -> None:
    first = "[services.a]\ncommand = 'sleep 62'\nenv = { TUISUP_TEST_TOKEN = '@TOKEN@' }\n"
    async with console(load(tmp_path, token, first + WORKERS)) as (host, app, pilot):
        await wait_until(host, lambda s: [v.state for v in s.values()] == [S.RUNNING] * 5)
        tree = app.query_one(ServiceTree)
        node = tree.parents["worker"]
        tree.move_cursor(tree.nodes_by_name["worker.2"])
        # `a` goes too: the rows above the cursor move in the same redraw.
        write_manifest(tmp_path, WORKERS.replace("replicas = 3", "replicas = 0"), token)
        assert await host.reload()
        await until(pilot, lambda: "0/0 running" in str(node.label))
        assert tree.parents["worker"] is node
        assert [child.data for child in tree.root.children] == ["worker", "web"]
        assert tree.selected_service == "worker"
