"""Groups in the console: a node above their members, keys on the whole group, the detail."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import wait_until
from tests.tui.test_console import console, notification_text, until
from tests.tui.test_replicas_console import load
from tuisup.engine import ServiceState
from tuisup.engine.events import GroupRestarting
from tuisup.tui.screens.detail import DetailScreen
from tuisup.tui.widgets.service_tree import ServiceTree

S = ServiceState

PIPELINE = """
[services.broker]
command = "sleep 60"
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[services.consumer]
command = "sleep 61"
replicas = 2
backoff = "immediate"
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[services.other]
command = "sleep 62"
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[groups.pipeline]
services = ["broker", "consumer"]
strategy = "rest_for_one"
max_restarts = 1
restart_window = 60
"""


async def test_a_group_is_a_node_above_its_members_and_keys_act_on_all_of_them(
    tmp_path: Path, token: str
) -> None:
    async with console(load(tmp_path, token, PIPELINE)) as (host, app, pilot):
        await wait_until(host, lambda s: all(v.state is S.RUNNING for v in s.values()))
        tree = app.query_one(ServiceTree)
        group = tree.parents["pipeline"]
        await until(pilot, lambda: "3/3 running ×0  rest_for_one" in str(group.label))
        assert [child.data for child in group.children] == ["broker", "consumer"]
        assert tree.parents["consumer"].parent is group
        assert tree.nodes_by_name["other"].parent is tree.root

        await pilot.press("down")  # on the group's node
        assert tree.selected_service == "pipeline"
        await pilot.press("x")
        await wait_until(
            host, lambda s: all(s[n].state is S.STOPPED for n in ("broker", "consumer.0"))
        )
        await until(pilot, lambda: "0/3 running" in str(group.label))
        assert host.snapshot()["other"].state is S.RUNNING
        await pilot.press("s")
        await wait_until(host, lambda s: all(v.state is S.RUNNING for v in s.values()))

        tree.move_cursor(tree.nodes_by_name["consumer.1"])
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        picture = app.export_screenshot().replace("&#160;", " ")
        assert "rest_for_one" in picture and "1 restarts in 60s, then stop" in picture
        assert "1 of consumer" in picture
        await pilot.press("escape")

        seq = host.bus.last_seq
        await host.kill("consumer.0")
        await until(pilot, lambda: "pipeline: consumer.0 failed" in notification_text(app))
        assert any(isinstance(e, GroupRestarting) for e in host.bus.since(seq))
        await wait_until(host, lambda s: all(v.state is S.RUNNING for v in s.values()))
        await host.kill("broker")  # the second restart in the window: the group gives up
        await until(pilot, lambda: "group pipeline: 2 restarts in 60s" in str(group.label))
        await wait_until(host, lambda s: s["broker"].state is S.STOPPED)


CHAIN = """
[services.db]
command = "sleep 60"
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[services.migrate]
command = "true"
depends_on = ["db"]
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[groups.chain]
services = ["db", "migrate"]
"""


async def test_a_group_whose_one_shot_member_ran_to_its_end_reads_as_up_not_missing(
    tmp_path: Path, token: str
) -> None:
    """Regression: a completed job made its group's node read `1/2 running` with the hollow
    glyph of a group that is down."""
    async with console(load(tmp_path, token, CHAIN)) as (host, app, pilot):
        await wait_until(host, lambda s: s["migrate"].state is S.EXITED)
        group = app.query_one(ServiceTree).parents["chain"]
        await until(pilot, lambda: "1/2 running · 1 done" in str(group.label))
        assert str(group.label).startswith("● ")
