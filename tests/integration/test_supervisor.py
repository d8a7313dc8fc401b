"""The supervisor's policies with real processes: restart, backoff, budget, commands."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from tests.conftest import wait_event, wait_until
from tuisup.engine import Host, ServiceState
from tuisup.engine.events import Event, RestartScheduled, StateChanged
from tuisup.spec import BackoffKind, Manifest, RestartPolicy

S = ServiceState
FAST = {"backoff": BackoffKind.IMMEDIATE}


def states_of(events: list[Event], name: str) -> list[str]:
    return [e.state.value for e in events if isinstance(e, StateChanged) and e.service == name]


async def record(host: Host, until: Callable[[list[Event]], bool]) -> list[Event]:
    seen: list[Event] = []
    with anyio.fail_after(10):
        async for batch in host.bus.stream(0):
            seen += batch
            if until(seen):
                return seen
    return seen


async def test_budget_spent_means_failed_after_exactly_max_restarts(
    make_manifest: Callable[..., Manifest],
) -> None:
    manifest = make_manifest(crash=("exit 3", {**FAST, "max_restarts": 2}))
    async with Host(manifest) as host:
        events = await record(host, lambda ev: S.FAILED.value in states_of(ev, "crash"))
        status = host.snapshot()["crash"]
    assert states_of(events, "crash") == [
        "starting",
        "running",
        "backoff",
        "starting",
        "running",
        "backoff",
        "starting",
        "running",
        "failed",
    ]
    assert status.reason == "2 restarts in 60s"
    assert status.restarts == 2
    assert [r.status.code for r in status.history] == [3, 3, 3]
    failed = [e for e in events if isinstance(e, StateChanged) and e.state is S.FAILED][0]
    assert failed.exit_code == 3 and failed.runtime is not None


async def test_restart_never_leaves_a_failed_run_exited(
    make_manifest: Callable[..., Manifest],
) -> None:
    manifest = make_manifest(once=("exit 1", {"restart": RestartPolicy.NEVER}))
    async with Host(manifest) as host:
        snap = await wait_until(host, lambda s: s["once"].state is S.EXITED)
    assert snap["once"].history[-1].status.code == 1


async def test_on_failure_does_not_restart_a_success_exit_code(
    make_manifest: Callable[..., Manifest],
) -> None:
    manifest = make_manifest(job=("exit 4", {"success_exit_codes": frozenset({0, 4})}))
    async with Host(manifest) as host:
        snap = await wait_until(host, lambda s: s["job"].state is S.EXITED)
    assert snap["job"].restarts == 0


async def test_always_restarts_a_clean_exit_without_spending_the_budget(
    make_manifest: Callable[..., Manifest],
) -> None:
    manifest = make_manifest(
        loop=("exit 0", {**FAST, "restart": RestartPolicy.ALWAYS, "max_restarts": 0})
    )
    async with Host(manifest) as host:
        snap = await wait_until(host, lambda s: s["loop"].restarts >= 5)
    assert snap["loop"].state is not S.FAILED


async def test_backoff_delays_follow_the_strategy(make_manifest: Callable[..., Manifest]) -> None:
    manifest = make_manifest(
        crash=(
            "exit 1",
            {
                "backoff": BackoffKind.LINEAR,
                "backoff_delay": 0.05,
                "jitter": 0.0,
                "max_restarts": 3,
            },
        )
    )
    async with Host(manifest) as host:
        events = await record(host, lambda ev: S.FAILED.value in states_of(ev, "crash"))
    delays = [e.delay for e in events if isinstance(e, RestartScheduled)]
    assert delays == pytest.approx([0.05, 0.1, 0.15])


async def test_stop_cancels_a_pending_backoff(make_manifest: Callable[..., Manifest]) -> None:
    manifest = make_manifest(crash=("exit 1", {"backoff_delay": 30.0, "jitter": 0.0}))
    async with Host(manifest) as host:
        await wait_until(host, lambda s: s["crash"].state is S.BACKOFF)
        assert host.snapshot()["crash"].next_start is not None
        after = host.bus.last_seq
        await host.stop("crash")
        assert host.snapshot()["crash"].state is S.STOPPED
        # A start makes a fresh run at once: the 30 s timer is gone, not merely ignored.
        await host.start("crash")
        event = await wait_event(
            host, lambda e: isinstance(e, StateChanged) and e.state is S.RUNNING, after, timeout=2
        )
        assert isinstance(event, StateChanged)


async def test_user_restart_is_not_a_failure(make_manifest: Callable[..., Manifest]) -> None:
    manifest = make_manifest(svc=("sleep 30", {"max_restarts": 0}))
    async with Host(manifest) as host:
        await wait_until(host, lambda s: s["svc"].state is S.RUNNING)
        first = host.snapshot()["svc"].pid
        for _ in range(3):
            await host.restart("svc")
        snap = host.snapshot()["svc"]
    assert snap.state is S.RUNNING and snap.pid != first
    assert snap.restarts == 3
    assert all(r.requested for r in snap.history)


async def test_concurrent_commands_never_make_two_live_incarnations(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    from tests.conftest import tagged_pids

    manifest = make_manifest(svc="exec sleep 30")
    async with Host(manifest) as host:
        await wait_until(host, lambda s: s["svc"].state is S.RUNNING)
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(host.restart, "svc")
                tg.start_soon(host.start, "svc")
        snap = host.snapshot()["svc"]
        assert snap.state is S.RUNNING
        # /proc/PID/environ reads empty for an instant while sh execs into sleep: poll.
        with anyio.fail_after(5):
            while (pids := list(tagged_pids(token))) != [snap.pid]:
                assert len(pids) <= 1, pids
                await anyio.sleep(0.01)


async def test_a_run_that_stayed_up_resets_the_backoff(
    make_manifest: Callable[..., Manifest], monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import tuisup.engine.policy as policy

    monkeypatch.setattr(policy, "RESET_AFTER", 0.0)
    manifest = make_manifest(
        crash=(
            "exit 1",
            {
                "backoff": BackoffKind.EXPONENTIAL,
                "backoff_delay": 0.01,
                "jitter": 0.0,
                "max_restarts": 3,
            },
        )
    )
    async with Host(manifest) as host:
        events = await record(host, lambda ev: S.FAILED.value in states_of(ev, "crash"))
    assert [e.attempt for e in events if isinstance(e, RestartScheduled)] == [1, 1, 1]


async def test_start_failure_is_failed_with_the_errno_in_the_log(
    make_manifest: Callable[..., Manifest], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from tuisup.model.record import replace

    manifest = make_manifest(good="sleep 30", bad="true")
    bad = replace(manifest.services["bad"], argv=("no-such-program-xyz", "--flag"))
    nodir = replace(
        manifest.services["bad"], name="nodir", argv=("true",), cwd=tmp_path / "missing"
    )
    manifest = replace(manifest, services={**manifest.services, "bad": bad, "nodir": nodir})
    async with Host(manifest) as host:
        snap = await wait_until(
            host,
            lambda s: (
                s["bad"].state is S.FAILED
                and s["nodir"].state is S.FAILED
                and s["good"].state is S.RUNNING
            ),
        )
        log = [line for b in host.store.since("bad", 0) for line in b.lines]
        nodir_log = [line for b in host.store.since("nodir", 0) for line in b.lines]
    assert snap["bad"].reason is not None and "[Errno 2]" in snap["bad"].reason
    assert "no-such-program-xyz" in snap["bad"].reason
    assert any("[Errno 2]" in line for line in log)
    assert any(
        f"No such file or directory: '{tmp_path / 'missing'}'" in line for line in nodir_log
    ), nodir_log
    assert (tmp_path / "logs" / "bad.log").read_text().count("Errno 2") == 1


async def test_restart_markers_separate_runs_in_the_log(
    make_manifest: Callable[..., Manifest],
) -> None:
    manifest = make_manifest(crash=("echo run; exit 2", {**FAST, "max_restarts": 1}))
    async with Host(manifest) as host:
        await wait_until(host, lambda s: s["crash"].state is S.FAILED)
        await wait_until(
            host, lambda s: sum(len(b.lines) for b in host.store.since("crash", 0)) >= 3
        )
        lines = [line for b in host.store.since("crash", 0) for line in b.lines]
    assert lines[0] == "run" and lines[2] == "run"
    assert lines[1].startswith("── run 2 · exited with code 2 after ")
