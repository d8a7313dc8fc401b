"""Dependencies with real processes: start order by condition, waiting through a dependency's
restarts, blocking on one that fails for good, manual starts, propagation, ordered stops."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio

from tests.conftest import wait_until
from tests.integration.test_health import command, free_port, server, tcp
from tuisup.engine import Host, ServiceState
from tuisup.engine.deps import STARTED_AFTER
from tuisup.engine.events import Event, Health, HealthChanged, StateChanged
from tuisup.spec import BackoffKind, Condition, Manifest, RestartPolicy

S = ServiceState
FAST = {"backoff": BackoffKind.FIXED, "backoff_delay": 0.05, "jitter": 0.0}


def first(events: list[Event], name: str, state: S) -> StateChanged:
    for e in events:
        if isinstance(e, StateChanged) and e.service == name and e.state is state:
            return e
    raise AssertionError(f"{name} never {state}")


def states_of(events: list[Event], name: str) -> list[S]:
    return [e.state for e in events if isinstance(e, StateChanged) and e.service == name]


async def test_start_order_honours_started_healthy_and_completed(
    make_manifest: Callable[..., Manifest],
) -> None:
    port = free_port()
    manifest = make_manifest(
        api=("exec sleep 30", {"depends_on": {"db": Condition.HEALTHY, "migrate": "completed"}}),
        worker=("exec sleep 30", {"depends_on": {"api": Condition.STARTED}}),
        migrate=("sleep 0.3; echo migrated", {"restart": RestartPolicy.NEVER}),
        db=(f"sleep 0.4; {server(port, 'tcp')}", {"healthcheck": tcp(port)}),
    )
    async with Host(manifest) as host:
        await wait_until(host, lambda snap: snap["worker"].state is S.RUNNING)
        events = list(host.bus.since(0))
    healthy = next(e for e in events if isinstance(e, HealthChanged) and e.health is Health.HEALTHY)
    completed = first(events, "migrate", S.EXITED)
    api = first(events, "api", S.RUNNING)
    worker = first(events, "worker", S.RUNNING)
    assert api.seq > healthy.seq and api.seq > completed.seq
    assert worker.ts - api.ts >= STARTED_AFTER  # `started` means stayed up a moment
    reason = first(events, "api", S.WAITING).reason
    assert reason is not None and reason.startswith("waiting for db to be healthy (")
    waiting = first(events, "worker", S.WAITING)
    assert waiting.reason == "waiting for api to start (waiting)"


async def test_a_fast_failing_dependency_keeps_its_dependent_from_starting(
    make_manifest: Callable[..., Manifest],
) -> None:
    manifest = make_manifest(
        db=("exit 3", {**FAST, "max_restarts": 2}),
        api=("exec sleep 30", {"depends_on": {"db": Condition.STARTED}}),
    )
    async with Host(manifest) as host:
        snap = await wait_until(host, lambda snap: snap["api"].state is S.FAILED)
        events = list(host.bus.since(0))
    assert snap["api"].reason == "dependency db failed: 2 restarts in 60s"
    assert S.STARTING not in states_of(events, "api")
    assert snap["db"].restarts == 2
    assert any("not started: dependency db failed" in line for line in _log(host, "api"))


async def test_a_dependent_waits_through_its_dependency_restarts(
    make_manifest: Callable[..., Manifest], tmp_path: Path
) -> None:
    # db dies at once twice, then stays up: api starts once, after db's last start.
    flaky = 'n=$(cat runs 2>/dev/null || echo 0); echo $((n+1)) > runs; [ "$n" -ge 2 ] || exit 1; '
    manifest = make_manifest(
        db=(flaky + "exec sleep 30", FAST),
        api=("exec sleep 30", {"depends_on": {"db": Condition.STARTED}}),
    )
    async with Host(manifest) as host:
        await wait_until(host, lambda snap: snap["api"].state is S.RUNNING)
        events = list(host.bus.since(0))
    assert (tmp_path / "runs").read_text().strip() == "3"
    assert states_of(events, "api").count(S.STARTING) == 1
    assert set(states_of(events, "api")) == {S.WAITING, S.STARTING, S.RUNNING}
    db_last_start = [e for e in events if isinstance(e, StateChanged) and e.service == "db"][-1]
    assert first(events, "api", S.STARTING).seq > db_last_start.seq


async def test_a_completed_condition_is_blocked_by_a_failed_job(
    make_manifest: Callable[..., Manifest],
) -> None:
    manifest = make_manifest(
        migrate=("echo no database; exit 4", {"restart": RestartPolicy.NEVER}),
        api=("exec sleep 30", {"depends_on": {"migrate": Condition.COMPLETED}}),
    )
    async with Host(manifest) as host:
        snap = await wait_until(host, lambda snap: snap["api"].state is S.FAILED)
    assert snap["api"].reason == "dependency migrate exited with code 4"


async def test_a_manual_start_starts_the_missing_dependencies_first(
    make_manifest: Callable[..., Manifest],
) -> None:
    manifest = make_manifest(
        db=("exec sleep 30", {"autostart": False, "healthcheck": command("true")}),
        api=("exec sleep 30", {"autostart": False, "depends_on": {"db": Condition.HEALTHY}}),
        other=("exec sleep 30", {"autostart": False}),
    )
    async with Host(manifest) as host:
        assert {s.state for s in host.snapshot().values()} == {S.STOPPED}
        await host.start("api")
        snap = await wait_until(host, lambda snap: snap["api"].state is S.RUNNING)
        assert snap["db"].health is Health.HEALTHY
        assert snap["other"].state is S.STOPPED


async def test_stopping_a_dependency_stops_its_dependents_first(
    make_manifest: Callable[..., Manifest],
) -> None:
    started = {"depends_on": {"db": Condition.STARTED}}
    manifest = make_manifest(
        db="exec sleep 30",
        api=("exec sleep 30", started),
        web=("exec sleep 30", {"depends_on": {"api": Condition.STARTED}}),
        other="exec sleep 30",
    )
    async with Host(manifest) as host:
        await wait_until(host, lambda snap: snap["web"].state is S.RUNNING)
        before = host.bus.last_seq
        await host.stop("db")
        events = list(host.bus.since(before))
        snap = host.snapshot()
        assert {name: snap[name].state for name in snap} == {
            "db": S.STOPPED,
            "api": S.STOPPED,
            "web": S.STOPPED,
            "other": S.RUNNING,
        }
        assert first(events, "api", S.STOPPING).seq > first(events, "web", S.STOPPED).seq
        assert first(events, "db", S.STOPPING).seq > first(events, "api", S.STOPPED).seq
        # Restarting api brings db back first; api waits for it to count as started.
        async with anyio.create_task_group() as tg:
            tg.start_soon(host.restart, "api")
            snap = await wait_until(host, lambda snap: snap["api"].state is S.WAITING)
            assert snap["api"].reason is not None and "db to start" in snap["api"].reason
        snap = await wait_until(host, lambda snap: snap["api"].state is S.RUNNING)
        assert snap["db"].state is S.RUNNING
        assert snap["web"].state is S.STOPPED


async def test_restart_dependents_restarts_the_running_dependents(
    make_manifest: Callable[..., Manifest],
) -> None:
    manifest = make_manifest(
        db=("exec sleep 30", {"restart_dependents": True, "healthcheck": command("true")}),
        api=("exec sleep 30", {"depends_on": {"db": Condition.HEALTHY}}),
        web=("exec sleep 30", {"depends_on": {"api": Condition.STARTED}}),
    )
    async with Host(manifest) as host:
        await wait_until(host, lambda snap: snap["web"].state is S.RUNNING)
        before = host.bus.last_seq
        await host.restart("db")
        await wait_until(
            host, lambda snap: snap["api"].state is S.RUNNING and snap["api"].restarts == 1
        )
        events = list(host.bus.since(before))
        assert host.snapshot()["web"].restarts == 0  # api does not propagate: not asked to
    db_healthy = next(
        e for e in events if isinstance(e, HealthChanged) and e.health is Health.HEALTHY
    )
    assert first(events, "api", S.STARTING).seq > db_healthy.seq


async def test_shutdown_stops_dependents_first_and_independent_branches_in_parallel(
    make_manifest: Callable[..., Manifest], tmp_path: Path
) -> None:
    def recorder(name: str, linger: float) -> str:
        # Record the SIGTERM, then take a moment to exit, as a real service would.
        return (
            f"trap 'echo {name} >> order; sleep {linger}; exit 0' TERM; "
            "echo ready; while :; do sleep 0.05; done"
        )

    started = Condition.STARTED
    manifest = make_manifest(
        db=recorder("db", 0.1),
        api=(recorder("api", 0.3), {"depends_on": {"db": started}}),
        web=(recorder("web", 0.1), {"depends_on": {"api": started}}),
        cache=recorder("cache", 0.1),
    )
    async with Host(manifest) as host:
        # Every trap is set once each has said so.
        await wait_until(host, lambda snap: all(_log(host, name) for name in snap))
        with anyio.fail_after(10):
            await host.shutdown()
        events = list(host.bus.since(0))
    order = (tmp_path / "order").read_text().split()
    assert order.index("web") < order.index("api") < order.index("db")
    # Each dependency got its SIGTERM only after its dependents had stopped.
    for dependent, dependency in (("web", "api"), ("api", "db")):
        stopped = first(events, dependent, S.STOPPED)
        assert first(events, dependency, S.STOPPING).seq > stopped.seq
    # cache depends on nothing and nothing on it: it did not wait for the chain.
    assert first(events, "cache", S.STOPPING).seq < first(events, "api", S.STOPPING).seq


def _log(host: Host, name: str) -> list[str]:
    return [line for batch in host.store.since(name, 0) for line in batch.lines]


async def test_starting_a_blocked_dependent_starts_its_failed_dependency_again(
    make_manifest: Callable[..., Manifest], tmp_path: Path
) -> None:
    # db fails at once on its first run (no restarts allowed), and stays up on the next.
    once = "if [ ! -e ran ]; then touch ran; exit 3; fi; exec sleep 30"
    manifest = make_manifest(
        db=(once, {"max_restarts": 0}),
        api=("exec sleep 30", {"depends_on": {"db": Condition.STARTED}}),
    )
    async with Host(manifest) as host:
        snap = await wait_until(host, lambda snap: snap["api"].state is S.FAILED)
        assert snap["api"].reason == "dependency db failed: 0 restarts in 60s"
        await host.start("api")  # not blocked by the failure it is about to undo
        assert host.snapshot()["api"].state is S.WAITING
        snap = await wait_until(host, lambda snap: snap["api"].state is S.RUNNING)
        assert snap["db"].state is S.RUNNING


async def test_restarting_a_dependent_does_not_run_a_completed_job_again(
    make_manifest: Callable[..., Manifest], tmp_path: Path
) -> None:
    manifest = make_manifest(
        migrate=("echo x >> runs", {"restart": RestartPolicy.NEVER}),
        api=("exec sleep 30", {"depends_on": {"migrate": Condition.COMPLETED}}),
    )
    async with Host(manifest) as host:
        await wait_until(host, lambda snap: snap["api"].state is S.RUNNING)
        await host.restart("api")
        snap = await wait_until(host, lambda snap: snap["api"].state is S.RUNNING)
        assert snap["api"].restarts == 1
        await host.start("api")  # already running: nothing to do
    assert (tmp_path / "runs").read_text() == "x\n"
    assert snap["migrate"].state is S.EXITED


async def test_a_reload_adds_a_dependent_and_changes_what_one_waits_for(tmp_path: Path) -> None:
    from tuisup.manifest import load_manifest

    path = tmp_path / "services.toml"
    db = '[services.db]\ncommand = "sleep 30"\nhealthcheck = { command = "true" }\n'
    path.write_text(db + '[services.job]\ncommand = "true"\nrestart = "never"\n')
    async with Host(load_manifest(path), watch=False) as host:
        await wait_until(host, lambda snap: snap["db"].health is Health.HEALTHY)
        # api added, waiting on a job that is itself added in the same save.
        path.write_text(
            db
            + '[services.job]\ncommand = "true"\nrestart = "never"\n'
            + '[services.late]\ncommand = "sleep 0.5"\nshell = true\nrestart = "never"\n'
            + '[services.api]\ncommand = "sleep 30"\n'
            + 'depends_on = { db = "healthy", late = "completed" }\n'
        )
        assert await host.reload()
        snap = await wait_until(host, lambda snap: snap["api"].state is S.WAITING)
        assert snap["api"].waiting_for == ("late",)
        snap = await wait_until(host, lambda snap: snap["api"].state is S.RUNNING)
        assert snap["late"].state is S.EXITED and snap["db"].restarts == 0


async def test_a_failure_for_good_cascades_down_the_chain_with_its_cause(
    make_manifest: Callable[..., Manifest],
) -> None:
    manifest = make_manifest(
        db=("exit 3", {**FAST, "max_restarts": 1}),
        migrate=("echo migrating", {"depends_on": {"db": Condition.STARTED}}),
        api=("exec sleep 30", {"depends_on": {"migrate": Condition.COMPLETED}}),
    )
    async with Host(manifest) as host:
        snap = await wait_until(host, lambda snap: snap["api"].state is S.FAILED)
    assert snap["db"].reason == "1 restart in 60s"
    assert snap["migrate"].reason == "dependency db failed: 1 restart in 60s"
    assert snap["api"].reason == "dependency migrate failed: dependency db failed: 1 restart in 60s"
    assert not snap["migrate"].history and not snap["api"].history  # neither ever ran


async def test_an_idle_chain_leaves_no_timer_behind(make_manifest: Callable[..., Manifest]) -> None:
    import asyncio

    def timers() -> list[str]:
        return [t.get_name() for t in asyncio.all_tasks() if t.get_name().endswith("_look_again")]

    manifest = make_manifest(
        db="exec sleep 30", api=("exec sleep 30", {"depends_on": {"db": Condition.STARTED}})
    )
    async with Host(manifest) as host:
        await wait_until(host, lambda snap: snap["api"].state is S.RUNNING)
        with anyio.fail_after(5):  # the one look at db after 1 s ends, and none follows
            while timers():
                await anyio.sleep(0.05)
