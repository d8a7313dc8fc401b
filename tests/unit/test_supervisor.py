"""The Supervisor's arithmetic, exactly: backoff delays, the budget, the reset after a long
run, and the 1-second `started` rule, with a fake clock and runs that end on demand."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import pytest

from tests.conftest import wait_until
from tests.unit.fakes import FakeClock, FakeExecutor, spec
from tuisup.engine import Host
from tuisup.engine.deps import STARTED_AFTER
from tuisup.engine.events import Bus, RestartScheduled, ServiceState
from tuisup.engine.logs import LogStore
from tuisup.engine.policy import RESET_AFTER
from tuisup.engine.status import ExitStatus
from tuisup.engine.supervisor import Supervisor
from tuisup.spec import BackoffKind, Condition, Manifest, RestartPolicy, ServiceSpec

S = ServiceState
FAILED_RUN = ExitStatus(code=1)


@asynccontextmanager
async def supervised(
    service: ServiceSpec, clock: FakeClock
) -> AsyncIterator[tuple[Supervisor, FakeExecutor, Bus]]:
    bus = Bus()
    executor = FakeExecutor()
    logs = LogStore(100, None, lambda batch: None)
    sup = Supervisor(service, executor, bus, logs, clock=clock, rng=random.Random(7))
    async with anyio.create_task_group() as tg:
        tg.start_soon(sup.serve, tg)
        yield sup, executor, bus
        tg.cancel_scope.cancel()


async def until(bus: Bus, sup: Supervisor, state: ServiceState) -> None:
    """Wait, event by event, until the service is in `state`."""
    with anyio.fail_after(2):
        while sup.state is not state:
            await bus.wait_after(bus.last_seq)


async def settled() -> None:
    """Let every task that can run, run (time does not move: the clock is fake)."""
    for _ in range(20):
        await anyio.lowlevel.checkpoint()


async def fail_and_back_off(sup: Supervisor, executor: FakeExecutor, bus: Bus) -> float:
    """End the current run with a failure; return the delay scheduled before the next."""
    seen = bus.last_seq
    executor.runs[-1].end(FAILED_RUN)
    with anyio.fail_after(2):
        while not (scheduled := [e for e in bus.since(seen) if isinstance(e, RestartScheduled)]):
            await bus.wait_after(bus.last_seq)
    [event] = scheduled
    return event.delay


async def test_exponential_backoff_doubles_up_to_its_cap_and_waits_exactly_that_long() -> None:
    clock = FakeClock()
    service = spec(backoff=BackoffKind.EXPONENTIAL, backoff_delay=0.5, backoff_max=4.0, jitter=0.0)
    async with supervised(service, clock) as (sup, executor, bus):
        await sup.start()
        for expected in (0.5, 1.0, 2.0, 4.0, 4.0):
            delay = await fail_and_back_off(sup, executor, bus)
            assert delay == expected
            assert sup.status().next_start == clock.time() + expected
            runs = len(executor.runs)
            clock.advance(expected - 0.001)
            await settled()
            assert sup.state is S.BACKOFF and len(executor.runs) == runs  # not yet
            clock.advance(0.001)
            await until(bus, sup, S.RUNNING)
            assert len(executor.runs) == runs + 1
        assert sup.restarts == 5


@pytest.mark.parametrize(
    ("kind", "delays"),
    [
        (BackoffKind.IMMEDIATE, [0.0, 0.0, 0.0]),
        (BackoffKind.FIXED, [1.5, 1.5, 1.5]),
        (BackoffKind.LINEAR, [1.5, 3.0, 4.5]),
    ],
)
async def test_each_backoff_kind_schedules_its_delays(
    kind: BackoffKind, delays: list[float]
) -> None:
    clock = FakeClock()
    service = spec(backoff=kind, backoff_delay=1.5, backoff_max=30.0, jitter=0.0)
    async with supervised(service, clock) as (sup, executor, bus):
        await sup.start()
        seen = []
        for _ in delays:
            seen.append(await fail_and_back_off(sup, executor, bus))
            clock.advance(seen[-1])
            await until(bus, sup, S.RUNNING)
        assert seen == delays


async def test_jitter_stays_within_its_bounds() -> None:
    clock = FakeClock()
    service = spec(backoff=BackoffKind.FIXED, backoff_delay=2.0, jitter=0.25, max_restarts=50)
    async with supervised(service, clock) as (sup, executor, bus):
        await sup.start()
        delays = []
        for _ in range(30):
            delays.append(await fail_and_back_off(sup, executor, bus))
            clock.advance(delays[-1])
            await until(bus, sup, S.RUNNING)
        assert all(1.5 <= d <= 2.5 for d in delays)
        assert len(set(delays)) > 1  # jittered, not fixed


async def test_the_budget_is_spent_by_failures_within_the_window_only() -> None:
    clock = FakeClock()
    service = spec(backoff=BackoffKind.IMMEDIATE, max_restarts=2, restart_window=60.0, jitter=0.0)
    async with supervised(service, clock) as (sup, executor, bus):
        await sup.start()
        for _ in range(6):  # spaced over a minute apart: the budget never runs out
            clock.advance(61)
            await fail_and_back_off(sup, executor, bus)
            await until(bus, sup, S.RUNNING)
        clock.advance(61)
        for _ in range(2):  # two within a minute: the budget is spent...
            clock.advance(1)
            await fail_and_back_off(sup, executor, bus)
            await until(bus, sup, S.RUNNING)
        clock.advance(1)
        executor.runs[-1].end(FAILED_RUN)  # ...and the third gives up
        await until(bus, sup, S.FAILED)
        assert sup.reason == "2 restarts in 60s"
        await sup.start()  # a manual start gives the whole budget back
        assert sup.state is S.RUNNING
        for _ in range(2):
            await fail_and_back_off(sup, executor, bus)
            await until(bus, sup, S.RUNNING)


async def test_a_run_that_lasted_starts_the_backoff_afresh() -> None:
    clock = FakeClock()
    service = spec(backoff=BackoffKind.EXPONENTIAL, backoff_delay=1.0, jitter=0.0)
    async with supervised(service, clock) as (sup, executor, bus):
        await sup.start()
        assert await fail_and_back_off(sup, executor, bus) == 1.0
        clock.advance(1.0)
        await until(bus, sup, S.RUNNING)
        assert await fail_and_back_off(sup, executor, bus) == 2.0
        clock.advance(2.0)
        await until(bus, sup, S.RUNNING)
        clock.advance(RESET_AFTER - 0.01)  # not quite long enough
        assert await fail_and_back_off(sup, executor, bus) == 4.0
        clock.advance(4.0)
        await until(bus, sup, S.RUNNING)
        clock.advance(RESET_AFTER)  # long enough
        assert await fail_and_back_off(sup, executor, bus) == 1.0
        assert sup.history[-1].runtime == RESET_AFTER


async def test_a_stop_in_backoff_cancels_the_pending_restart() -> None:
    clock = FakeClock()
    service = spec(backoff=BackoffKind.FIXED, backoff_delay=5.0, jitter=0.0)
    async with supervised(service, clock) as (sup, executor, bus):
        await sup.start()
        await fail_and_back_off(sup, executor, bus)
        await sup.stop()
        assert sup.state is S.STOPPED and sup.reason == "stopped during backoff"
        clock.advance(60)
        await settled()
        assert sup.state is S.STOPPED and len(executor.runs) == 1


async def test_restart_policies_decide_what_follows_an_exit() -> None:
    clock = FakeClock()
    never = spec("never", restart=RestartPolicy.NEVER)
    on_failure = spec("onf", restart=RestartPolicy.ON_FAILURE, backoff=BackoffKind.IMMEDIATE)
    always = spec("always", restart=RestartPolicy.ALWAYS, backoff=BackoffKind.IMMEDIATE)
    for service, status, after in (
        (never, FAILED_RUN, S.EXITED),
        (on_failure, ExitStatus(code=0), S.EXITED),
        (on_failure, FAILED_RUN, S.RUNNING),
        (always, ExitStatus(code=0), S.RUNNING),
    ):
        async with supervised(service, clock) as (sup, executor, bus):
            await sup.start()
            executor.runs[-1].end(status)
            with anyio.fail_after(2):
                while not (sup.state is after and len(executor.runs) == (after is S.RUNNING) + 1):
                    await bus.wait_after(bus.last_seq)


async def test_a_dependency_counts_as_started_after_exactly_one_second_of_running(
    make_manifest: Callable[..., Manifest],
) -> None:
    """Real processes, fake time: the waker looks again when db has run STARTED_AFTER."""
    clock = FakeClock()
    manifest = make_manifest(
        db="exec sleep 60", api=("exec sleep 61", {"depends_on": {"db": Condition.STARTED}})
    )
    async with Host(manifest, clock=clock) as host:
        await wait_until(host, lambda s: s["db"].state is S.RUNNING)
        await wait_until(host, lambda s: s["api"].state is S.WAITING)
        with anyio.fail_after(2):
            while clock.sleeping == 0:  # the waker's look at db, once it has run 1 s
                await anyio.lowlevel.checkpoint()
        clock.advance(STARTED_AFTER - 0.01)
        await settled()
        assert host.snapshot()["api"].state is S.WAITING
        await host.start("api")  # looking again (as a start by hand does) changes nothing yet
        assert host.snapshot()["api"].state is S.WAITING
        clock.advance(0.01)
        snap = await wait_until(host, lambda s: s["api"].state is S.RUNNING)
        assert snap["api"].reason is None
