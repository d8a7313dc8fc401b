"""Event hooks (a service's `on` table) run by a real Host: real processes, files and inotify.

Every hook event with what its environment carries; a hook that fails, one that cannot
run, one that hangs (killed at its timeout, the restart not delayed); a burst of crashes
(coalesced, no fork storm); a change to `on` applied in place; nothing left after a
shutdown or a second Ctrl-C.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import tagged_pids, wait_event, wait_gone, wait_until, zombie_children
from tuisup.engine import Host, ServiceState
from tuisup.engine.events import FilesChanged, HookRan, ManifestReloaded, StateChanged
from tuisup.manifest import load_manifest
from tuisup.spec import (
    BackoffKind,
    HealthCheck,
    HealthKind,
    Hook,
    HookEvent,
    Manifest,
    RestartPolicy,
)

S = ServiceState
E = HookEvent

DUMP = """\
import json, os, sys
data = {k: v for k, v in os.environ.items() if k.startswith("TUISUP_")}
data["cwd"] = os.getcwd()
name = f"{data['TUISUP_HOOK']}-{os.getpid()}.json"
with open(os.path.join(sys.argv[1], name), "w") as f:
    json.dump(data, f)
"""


def sh(text: str) -> Hook:
    return Hook(argv=("/bin/sh", "-c", text), command=text)


@pytest.fixture
def dump(tmp_path: Path) -> Callable[[], Hook]:
    """A hook (an array) that writes its TUISUP_ variables and cwd to dumps/KEY-PID.json."""
    (tmp_path / "dumps").mkdir()
    script = tmp_path / "dump.py"
    script.write_text(DUMP)

    def make() -> Hook:
        argv = (sys.executable, str(script), str(tmp_path / "dumps"))
        return Hook(argv=argv, command=" ".join(argv))

    return make


def dumped(tmp_path: Path, key: str) -> list[dict[str, str]]:
    """What each run of hook `key` saw, oldest first."""
    files = sorted((tmp_path / "dumps").glob(f"{key}-*.json"), key=lambda p: p.stat().st_mtime_ns)
    return [json.loads(p.read_text()) for p in files]


def ran(host: Host, key: str, service: str = "svc") -> list[HookRan]:
    """Every run of a hook the bus still holds, oldest first."""
    return [
        e
        for e in host.bus.since(0)
        if isinstance(e, HookRan) and e.hook == key and e.service == service
    ]


async def hook_ran(host: Host, key: str, after: int = 0, timeout: float = 10.0) -> HookRan:
    event = await wait_event(
        host, lambda e: isinstance(e, HookRan) and e.hook == key, after, timeout
    )
    assert isinstance(event, HookRan)
    return event


def check(text: str, **options: Any) -> HealthCheck:
    timing = {"interval": 0.1, "timeout": 1.0, "retries": 1}
    return HealthCheck(
        kind=HealthKind.COMMAND, target=text, argv=("/bin/sh", "-c", text), **{**timing, **options}
    )


def log_lines(host: Host, service: str = "svc") -> list[tuple[str, str]]:
    return [(b.stream, line) for b in host.store.since(service, 0) for line in b.lines]


async def test_started_healthy_and_stopped_hooks_run_in_the_services_cwd_and_environment(
    make_manifest: Callable[..., Manifest], dump: Callable[[], Hook], tmp_path: Path, token: str
) -> None:
    hooks = {E.STARTED: dump(), E.HEALTHY: dump(), E.STOPPED: dump()}
    options = {"hooks": hooks, "healthcheck": check("true")}
    async with Host(make_manifest(svc=("exec sleep 30", options))) as host:
        started = await hook_ran(host, "started")
        await hook_ran(host, "healthy")
        after = host.bus.last_seq
        await host.stop("svc")
        stopped = await hook_ran(host, "stopped", after)
        assert started.exit_code == 0 and started.succeeded and started.coalesced == 1
        assert stopped.command == hooks[E.STOPPED].command
    [up], [healthy], [down] = (dumped(tmp_path, k) for k in ("started", "healthy", "stopped"))
    for seen in (up, healthy, down):
        assert seen["cwd"] == str(tmp_path)
        assert seen["TUISUP_SERVICE"] == "svc"
        assert seen["TUISUP_HOST"] == host.reaper.tag
        assert seen["TUISUP_TEST_TOKEN"] == token  # the service's own variables
        assert seen["TUISUP_COALESCED"] == "1"
        assert "TUISUP_EXIT_CODE" not in seen
    assert "TUISUP_SIGNAL" not in up and "TUISUP_SIGNAL" not in healthy
    assert up["TUISUP_HOOK"] == "started" and up["TUISUP_STATE"] == "running"
    assert json.loads(up["TUISUP_EVENT"])["event"] == "state"
    assert json.loads(up["TUISUP_EVENT"])["state"] == "running"
    assert healthy["TUISUP_STATE"] == "running"
    assert json.loads(healthy["TUISUP_EVENT"])["health"] == "healthy"
    assert down["TUISUP_STATE"] == "stopped"
    assert down["TUISUP_SIGNAL"] == "15"  # how the run it stopped ended


async def test_exited_restarting_and_failed_hooks_carry_the_exit_and_the_reason(
    make_manifest: Callable[..., Manifest], dump: Callable[[], Hook], tmp_path: Path
) -> None:
    hooks = {E.EXITED: dump(), E.RESTARTING: dump(), E.FAILED: dump()}
    options = {"hooks": hooks, "backoff": BackoffKind.IMMEDIATE, "max_restarts": 1}
    async with Host(make_manifest(svc=("exit 3", options))) as host:
        failed = await hook_ran(host, "failed")
        for key, events in (("exited", 2), ("restarting", 1)):
            await wait_until(
                host, lambda s, k=key, n=events: sum(e.coalesced for e in ran(host, k)) == n
            )
        assert failed.succeeded
    exits = dumped(tmp_path, "exited")
    assert exits and all(seen["TUISUP_EXIT_CODE"] == "3" for seen in exits)
    assert all("TUISUP_SIGNAL" not in seen for seen in exits)
    assert exits[-1]["TUISUP_STATE"] == "failed"
    [restarting] = dumped(tmp_path, "restarting")
    assert restarting["TUISUP_STATE"] == "backoff"
    event = json.loads(restarting["TUISUP_EVENT"])
    assert (event["event"], event["attempt"]) == ("restart_scheduled", 1)
    [gave_up] = dumped(tmp_path, "failed")
    assert gave_up["TUISUP_STATE"] == "failed"
    assert gave_up["TUISUP_REASON"] == host.snapshot()["svc"].reason


async def test_an_exited_hook_gets_the_signal_that_ended_the_run(
    make_manifest: Callable[..., Manifest], dump: Callable[[], Hook], tmp_path: Path
) -> None:
    options = {"hooks": {E.EXITED: dump()}, "restart": RestartPolicy.NEVER}
    async with Host(make_manifest(svc=("exec sleep 30", options))) as host:
        await wait_until(host, lambda s: s["svc"].state is S.RUNNING)
        await host.kill("svc")
        await hook_ran(host, "exited")
    [seen] = dumped(tmp_path, "exited")
    assert seen["TUISUP_SIGNAL"] == "9" and "TUISUP_EXIT_CODE" not in seen
    assert seen["TUISUP_STATE"] == "exited"


async def test_an_unhealthy_hook_gets_the_checks_failure(
    make_manifest: Callable[..., Manifest], dump: Callable[[], Hook], tmp_path: Path
) -> None:
    options = {"hooks": {E.UNHEALTHY: dump()}, "healthcheck": check("echo down; exit 1")}
    async with Host(make_manifest(svc=("exec sleep 30", options))) as host:
        await hook_ran(host, "unhealthy")
    [seen] = dumped(tmp_path, "unhealthy")
    assert seen["TUISUP_REASON"] == "exit code 1: down"
    assert seen["TUISUP_STATE"] == "running"


async def test_a_files_changed_hook_runs_when_a_watched_file_is_saved(
    make_manifest: Callable[..., Manifest], dump: Callable[[], Hook], tmp_path: Path
) -> None:
    (tmp_path / "watched.txt").write_text("")
    options = {"hooks": {E.FILES_CHANGED: dump()}, "watch": ("watched.txt",)}
    async with Host(make_manifest(svc=("exec sleep 30", options))) as host:
        with anyio.fail_after(10):  # the watcher starts in a thread: save until it sees one
            while not any(isinstance(e, FilesChanged) for e in host.bus.since(0)):
                (tmp_path / "watched.txt").write_text(f"{host.bus.last_seq}")
                with anyio.move_on_after(1.0):
                    await wait_event(host, lambda e: isinstance(e, FilesChanged), 0)
        await hook_ran(host, "files_changed")
    seen = dumped(tmp_path, "files_changed")[0]
    assert json.loads(seen["TUISUP_EVENT"])["paths"] == ["watched.txt"]


async def test_a_failing_hook_is_reported_once_in_the_log_and_as_an_event_never_retried(
    make_manifest: Callable[..., Manifest],
) -> None:
    hooks = {E.STARTED: sh("echo oops; echo to stderr >&2; exit 2"), E.STOPPED: sh("true")}
    async with Host(make_manifest(svc=("exec sleep 30", {"hooks": hooks}))) as host:
        failed = await hook_ran(host, "started")
        after = host.bus.last_seq
        await host.stop("svc")
        await hook_ran(host, "stopped", after)  # the bus moved on: a retry would be here
        assert [e.exit_code for e in ran(host, "started")] == [2]
        assert not failed.succeeded and not failed.timed_out
        lines = log_lines(host)
        assert ("hook", "oops") in lines and ("hook", "to stderr") in lines
        assert ("tuisup", 'tuisup: hook "started" failed with code 2') in [
            (stream, line.split(" after ")[0]) for stream, line in lines
        ]


async def test_a_hook_that_cannot_run_is_reported_once(
    make_manifest: Callable[..., Manifest],
) -> None:
    missing = Hook(argv=("./no-such-hook",), command="./no-such-hook")
    async with Host(make_manifest(svc=("exec sleep 30", {"hooks": {E.STARTED: missing}}))) as host:
        event = await hook_ran(host, "started")
        assert event.error is not None and event.error.startswith("cannot run: ")
        assert "No such file or directory" in event.error
        assert event.exit_code is None and not event.succeeded
        assert f"tuisup: {event.describe()}" in [line for _, line in log_lines(host)]
        assert host.snapshot()["svc"].state is S.RUNNING


async def test_a_hanging_hook_is_killed_with_its_group_at_its_timeout_and_never_delays_a_restart(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    # The hook starts a grandchild in its group, then hangs; its timeout kills both.
    hang = sh("sleep 60 & exec sleep 61")
    options = {
        "hooks": {E.EXITED: hang},
        "hook_timeout": 1.0,
        "backoff": BackoffKind.IMMEDIATE,
        "restart": RestartPolicy.ALWAYS,
    }
    marker = "first run done"
    command = f"if [ -e {marker!r} ]; then exec sleep 30; fi; touch {marker!r}; exit 1"
    async with Host(make_manifest(svc=(command, options))) as host:
        again = await wait_event(
            host,
            lambda e: isinstance(e, StateChanged) and e.state is S.RUNNING and e.restarts == 1,
            after=0,
        )
        killed = await hook_ran(host, "exited")
        assert killed.seq > again.seq  # restarted while the hook still hung
        assert killed.timed_out and killed.signal == 9 and not killed.succeeded
        assert killed.describe().startswith('hook "exited" timed out after 1s')
        assert 1.0 <= killed.runtime < 3.0
        # Only the service is left of what ran: the hook's group died with it.
        assert len(list(tagged_pids(token))) == 1
    await wait_gone(token)
    assert zombie_children() == []


async def test_a_burst_of_100_crashes_runs_each_hook_twice_with_the_count_passed_on(
    make_manifest: Callable[..., Manifest], tmp_path: Path
) -> None:
    # Each hook's first run waits until the test lets it go: every event of the burst
    # comes while it runs, and must be coalesced into one more run, not 100.
    release = tmp_path / "release"
    wait = f"while [ ! -e {str(release)!r} ]; do sleep 0.01; done; echo $TUISUP_COALESCED"
    keys = (E.STARTED, E.EXITED, E.RESTARTING, E.FAILED)
    options = {
        "hooks": {key: sh(wait) for key in keys},
        "hook_timeout": 60.0,
        "backoff": BackoffKind.IMMEDIATE,
        "max_restarts": 99,
        "restart_window": 600.0,
    }
    async with Host(make_manifest(svc=("exit 1", options))) as host:
        await wait_until(host, lambda s: s["svc"].state is S.FAILED, timeout=60)
        events = {
            "started": sum(
                isinstance(e, StateChanged) and e.state is S.RUNNING for e in host.bus.since(0)
            ),
            "exited": 100,
            "restarting": 99,
            "failed": 1,
        }
        assert events["started"] == 100
        assert all(len(ran(host, str(key))) <= 1 for key in keys)  # still in their first run
        release.touch()
        for key in keys:
            await wait_until(
                host,
                lambda s, key=key: sum(e.coalesced for e in ran(host, str(key))) == events[key],
            )
        for key in keys:
            runs = ran(host, str(key))
            assert len(runs) == (1 if events[str(key)] == 1 else 2), (key, runs)
            assert runs[0].coalesced == 1
            assert all(run.succeeded for run in runs)
        printed = [line for stream, line in log_lines(host) if stream == "hook"]
        assert sorted(printed) == sorted(["1"] * 4 + ["99", "99", "98"])


async def test_a_change_to_on_applies_in_place_to_the_run_it_has(
    tmp_path: Path, dump: Callable[[], Hook], token: str
) -> None:
    path = tmp_path / "services.toml"
    table = f'[services.svc]\ncommand = "sleep 30"\nenv = {{ TUISUP_TEST_TOKEN = "{token}" }}\n'
    path.write_text(table)
    async with Host(load_manifest(path), watch=False) as host:
        before = await wait_until(host, lambda s: s["svc"].state is S.RUNNING)
        hook = dump()
        path.write_text(f"{table}on.stopped = {json.dumps(list(hook.argv))}\n")
        assert await host.reload()
        reloaded = [e for e in host.bus.since(0) if isinstance(e, ManifestReloaded)]
        assert [(e.changed, e.updated) for e in reloaded] == [((), ("svc",))]
        assert host.snapshot()["svc"].pid == before["svc"].pid
        assert host.snapshot()["svc"].spec.hooks == {"stopped": hook.command}
        after = host.bus.last_seq
        await host.stop("svc")
        await hook_ran(host, "stopped", after)
    assert len(dumped(tmp_path, "stopped")) == 1


async def test_the_shutdown_waits_for_the_hooks_of_its_own_events(
    make_manifest: Callable[..., Manifest], tmp_path: Path, token: str
) -> None:
    done = tmp_path / "cleaned up"
    hook = sh(f"sleep 0.3; touch {str(done)!r}")
    async with Host(make_manifest(svc=("exec sleep 30", {"hooks": {E.STOPPED: hook}}))) as host:
        await wait_until(host, lambda s: s["svc"].state is S.RUNNING)
    assert done.exists()
    assert [e.succeeded for e in ran(host, "stopped")] == [True]
    assert list(tagged_pids(token)) == []
    assert zombie_children() == []


async def test_a_hook_hanging_at_the_shutdown_is_killed_at_its_timeout_and_leaves_nothing(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    hang = sh("sleep 60 & exec sleep 61")
    options = {"hooks": {E.STARTED: hang, E.STOPPED: hang}, "hook_timeout": 0.5}
    async with Host(make_manifest(svc=("exec sleep 30", options))) as host:
        with anyio.fail_after(5):  # the service and the started hook's two processes
            while len(list(tagged_pids(token))) < 3:
                await anyio.sleep(0.01)
    assert [e.timed_out for e in ran(host, "started")] == [True]
    assert [e.timed_out for e in ran(host, "stopped")] == [True]
    assert list(tagged_pids(token)) == []
    assert zombie_children() == []


async def test_killing_everything_kills_the_hooks_at_once(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    hang = sh("sleep 60 & exec sleep 61")
    options = {"hooks": {E.STARTED: hang}, "hook_timeout": 60.0}
    async with Host(make_manifest(svc=("exec sleep 30", options))) as host:
        with anyio.fail_after(5):
            while len(list(tagged_pids(token))) < 3:
                await anyio.sleep(0.01)
        host.kill_all()
        killed = await hook_ran(host, "started", timeout=2)
        assert killed.signal == 9 and not killed.timed_out
    await wait_gone(token, timeout=2)
    assert zombie_children() == []


def test_every_hook_event_is_covered_here() -> None:
    source = Path(__file__).read_text()
    for key in HookEvent:
        assert f"E.{key.name}" in source, key
