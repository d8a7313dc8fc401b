"""Supervision groups on a real host: a member SIGKILLed, and who restarts, in what order."""

from __future__ import annotations

import json
from pathlib import Path

import anyio

from tests.conftest import Tuisup, tagged_pids, wait_event, wait_until, write_manifest
from tuisup.engine import Host, ServiceState
from tuisup.engine.events import Event, GroupFailed, GroupRestarting, ManifestReloaded, StateChanged
from tuisup.manifest import load_manifest

S = ServiceState

MEMBERS = """
[services.a]
command = "sleep 60"
backoff = "fixed"
backoff_delay = 0.2
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[services.b]
command = "sleep 61"
backoff = "fixed"
backoff_delay = 0.2
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[services.c]
command = "sleep 62"
backoff = "fixed"
backoff_delay = 0.2
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[services.outside]
command = "sleep 63"
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[groups.g]
services = ["a", "b", "c"]
"""


def manifest(tmp_path: Path, token: str, group: str = "", extra: str = "") -> Path:
    return write_manifest(tmp_path, MEMBERS + group + extra, token)


def all_running(views: dict[str, object]) -> bool:
    return all(v.state is S.RUNNING for v in views.values())  # type: ignore[attr-defined]


def moves(events: list[Event]) -> list[tuple[str, str]]:
    """The members' state changes, in order, as (service, state)."""
    return [
        (e.service, e.state.value)
        for e in events
        if isinstance(e, StateChanged) and e.service in ("a", "b", "c")
    ]


async def kill_and_settle(host: Host, name: str, restarted: list[str]) -> list[Event]:
    """SIGKILL `name`; return the events until every one of `restarted` runs again."""
    before = host.snapshot()
    seq = host.bus.last_seq
    await host.kill(name)

    def back(views: dict[str, object]) -> bool:
        return all_running(views) and all(
            views[n].pid != before[n].pid  # type: ignore[attr-defined]
            for n in restarted
        )

    await wait_until(host, back)
    return list(host.bus.since(seq))


async def test_one_for_all_stops_the_others_in_reverse_then_starts_all_in_order(
    tmp_path: Path, token: str
) -> None:
    path = manifest(tmp_path, token, 'strategy = "one_for_all"\n')
    async with Host(load_manifest(path)) as host:
        before = await wait_until(host, all_running)
        events = await kill_and_settle(host, "b", ["a", "b", "c"])
        restarts = [e for e in events if isinstance(e, GroupRestarting)]
        assert [(e.service, e.restarting, e.strategy) for e in restarts] == [
            ("b", ("a", "b", "c"), "one_for_all")
        ]
        assert restarts[0].describe() == "g: b failed, restarting a, b, c (one_for_all)"
        assert moves(events) == [
            ("b", "backoff"),
            ("c", "stopping"),
            ("c", "stopped"),
            ("a", "stopping"),
            ("a", "stopped"),
            ("a", "starting"),
            ("a", "running"),
            ("b", "starting"),
            ("b", "running"),
            ("c", "starting"),
            ("c", "running"),
        ]
        assert host.snapshot()["outside"].pid == before["outside"].pid
        assert all(e.group == "g" for e in events if isinstance(e, StateChanged))


async def test_rest_for_one_restarts_the_failed_member_and_those_after_it(
    tmp_path: Path, token: str
) -> None:
    path = manifest(tmp_path, token, 'strategy = "rest_for_one"\n')
    async with Host(load_manifest(path)) as host:
        before = await wait_until(host, all_running)
        events = await kill_and_settle(host, "b", ["b", "c"])
        assert moves(events) == [
            ("b", "backoff"),
            ("c", "stopping"),
            ("c", "stopped"),
            ("b", "starting"),
            ("b", "running"),
            ("c", "starting"),
            ("c", "running"),
        ]
        assert host.snapshot()["a"].pid == before["a"].pid


async def test_one_for_one_restarts_the_member_alone_but_counts_for_the_group(
    tmp_path: Path, token: str
) -> None:
    path = manifest(tmp_path, token)
    async with Host(load_manifest(path)) as host:
        before = await wait_until(host, all_running)
        events = await kill_and_settle(host, "b", ["b"])
        assert [e.restarting for e in events if isinstance(e, GroupRestarting)] == [("b",)]
        now = host.snapshot()
        assert (now["a"].pid, now["c"].pid) == (before["a"].pid, before["c"].pid)


async def test_a_never_member_is_not_restarted_by_a_siblings_failure(
    tmp_path: Path, token: str
) -> None:
    path = manifest(tmp_path, token, 'strategy = "one_for_all"\n')
    text = path.read_text().replace(
        'command = "sleep 62"', 'command = "sleep 62"\nrestart = "never"'
    )
    path.write_text(text)
    async with Host(load_manifest(path)) as host:
        before = await wait_until(host, all_running)
        events = await kill_and_settle(host, "b", ["a", "b"])
        assert [e.restarting for e in events if isinstance(e, GroupRestarting)] == [("a", "b")]
        assert host.snapshot()["c"].pid == before["c"].pid


async def test_more_restarts_than_the_budget_fail_the_group_and_stop_its_members(
    tmp_path: Path, token: str
) -> None:
    group = 'strategy = "one_for_all"\nmax_restarts = 1\nrestart_window = 60\n'
    path = manifest(tmp_path, token, group)
    async with Host(load_manifest(path)) as host:
        await wait_until(host, all_running)
        await kill_and_settle(host, "b", ["a", "b", "c"])
        seq = host.bus.last_seq
        await host.kill("c")
        failed = await wait_event(host, lambda e: isinstance(e, GroupFailed), seq)
        assert isinstance(failed, GroupFailed)
        assert (failed.reason, failed.on_failure) == ("group g: 2 restarts in 60s", "stop")
        views = await wait_until(
            host, lambda s: all(s[n].state is S.STOPPED for n in ("a", "b", "c"))
        )
        assert views["outside"].state is S.RUNNING
        lines = [line for batch in await host.logs("a") for line in batch.lines]
        assert "tuisup: group g: 2 restarts in 60s: stopping it" in lines[-1]
        assert host.groups.groups["g"].failed == "group g: 2 restarts in 60s"

        await host.start("g")  # the group again, its budget afresh
        await wait_until(host, all_running)
        assert host.groups.groups["g"].failed is None


async def test_a_group_restart_passes_the_dependency_gate(tmp_path: Path, token: str) -> None:
    path = manifest(tmp_path, token, 'strategy = "rest_for_one"\n')
    text = path.read_text().replace(
        'command = "sleep 61"', 'command = "sleep 61"\ndepends_on = ["a"]'
    )
    path.write_text(text)
    async with Host(load_manifest(path)) as host:
        await wait_until(host, all_running)
        events = await kill_and_settle(host, "a", ["a", "b", "c"])
        waits = [e for e in events if isinstance(e, StateChanged) and e.state is S.WAITING]
        assert [e.service for e in waits] == ["b"]  # for a to have run long enough
        order = [n for n, state in moves(events) if state == "running"]
        assert order == ["a", "c", "b"]  # c needs nothing; b once a counts as started


def test_on_failure_shutdown_stops_everything_and_exits_1(tmp_path: Path, token: str) -> None:
    extra = '\n[services.crashy]\ncommand = "sh -c \'sleep 0.2; exit 3\'"\nbackoff = "immediate"\n'
    extra += 'env = { TUISUP_TEST_TOKEN = "@TOKEN@" }\n[groups.h]\nservices = ["crashy"]\n'
    extra += 'max_restarts = 1\non_failure = "shutdown"\n'
    path = manifest(tmp_path, token, "", extra)
    tuisup = Tuisup("--no-tui", "--json", "-f", str(path), cwd=tmp_path)
    line = tuisup.expect(lambda text: '"group_failed"' in text)
    assert json.loads(line) | {"seq": 0, "ts": 0} == {
        "seq": 0,
        "ts": 0,
        "event": "group_failed",
        "group": "h",
        "reason": "group h: 2 restarts in 5s",
        "on_failure": "shutdown",
    }
    assert tuisup.finish() == 1
    assert not list(tagged_pids(token))


async def test_a_group_added_by_a_reload_takes_its_members_in_place(
    tmp_path: Path, token: str
) -> None:
    path = manifest(tmp_path, token)
    plain = path.read_text().split("[groups.g]")[0]
    path.write_text(plain)
    async with Host(load_manifest(path)) as host:
        before = await wait_until(host, all_running)
        assert host.snapshot()["a"].group is None
        path.write_text(plain + '[groups.g]\nservices = ["a", "b"]\nstrategy = "one_for_all"\n')
        seq = host.bus.last_seq
        assert await host.reload()
        reloaded = [e for e in host.bus.since(seq) if isinstance(e, ManifestReloaded)]
        assert [(e.changed, e.updated) for e in reloaded] == [((), ("a", "b"))]
        now = host.snapshot()
        assert (now["a"].group, now["a"].pid) == ("g", before["a"].pid)
        events = await kill_and_settle(host, "b", ["a", "b"])
        assert [e.restarting for e in events if isinstance(e, GroupRestarting)] == [("a", "b")]


async def test_stopping_a_group_does_not_wait_for_a_restart_that_waits_for_a_backoff(
    tmp_path: Path, token: str
) -> None:
    path = manifest(tmp_path, token, 'strategy = "one_for_all"\n')
    path.write_text(path.read_text().replace("backoff_delay = 0.2", "backoff_delay = 30", 1))
    async with Host(load_manifest(path)) as host:
        await wait_until(host, all_running)
        seq = host.bus.last_seq
        await host.kill("a")  # its own backoff: 30 s; the group restart waits for it
        await wait_event(host, lambda e: isinstance(e, GroupRestarting), seq)
        await wait_until(host, lambda s: s["c"].state is S.STOPPED)
        with anyio.fail_after(5):
            await host.stop("g")
        views = host.snapshot()
        assert [views[n].state for n in ("a", "b", "c")] == [S.STOPPED] * 3
        seq = host.bus.last_seq
        with anyio.move_on_after(0.5):  # nothing starts them again
            await wait_event(host, lambda e: isinstance(e, StateChanged), seq, timeout=1)
            raise AssertionError("a member moved after the group was stopped")
