"""The host's shutdown: run once, always finished, and bounded however it is called."""

from __future__ import annotations

import sys
from collections.abc import Callable

import anyio
import pytest

from tests.conftest import tagged_pids, wait_until, zombie_children
from tuisup.engine import Host, ServiceState, reaper
from tuisup.engine.events import HostStopped
from tuisup.spec import Manifest

S = ServiceState


async def test_a_shutdown_whose_first_caller_is_cancelled_still_finishes(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    """Regression: the shutdown event was set on its last line only, so a first caller
    cancelled half-way left every later caller (and the Host's own exit) waiting forever."""
    manifest = make_manifest(stubborn=("trap '' TERM; sleep 60", {"stop_timeout": 0.5}))
    host = Host(manifest)
    with anyio.fail_after(10):
        async with host:
            await wait_until(host, lambda s: s["stubborn"].state is S.RUNNING)
            with anyio.move_on_after(0.1):
                await host.shutdown()  # cancelled while the service ignores SIGTERM
            assert host.stopping
            await host.shutdown()  # a second caller waits for the same shutdown to end
            assert host.snapshot()["stubborn"].state is S.STOPPED
            assert any(isinstance(e, HostStopped) for e in host.bus.since(0))
    assert not list(tagged_pids(token))


async def test_starts_are_refused_once_the_shutdown_began(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    """Regression: a start (from a reload under way, or a key) after `q` ran its service
    after `host_stopped`."""
    manifest = make_manifest(
        slow=("trap '' TERM; sleep 60", {"stop_timeout": 1.0}),
        idle=("sleep 61", {"autostart": False}),
    )
    async with Host(manifest) as host:
        await wait_until(host, lambda s: s["slow"].state is S.RUNNING)
        async with anyio.create_task_group() as tg:
            tg.start_soon(host.shutdown)
            await wait_until(host, lambda s: s["slow"].state is S.STOPPING)
            await host.start("idle")
            await host.restart("slow")
        assert host.snapshot()["idle"].state is S.STOPPED
        assert host.snapshot()["slow"].state is S.STOPPED
    assert not list(tagged_pids(token))


async def test_stopping_many_services_does_not_list_every_child_once_per_service(
    make_manifest: Callable[..., Manifest], token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: each service's stop listed all of tuisup's children several times (its
    stop's sweep, its exit's sweeps, the SIGCHLD of its exit), so stopping N services read N
    lists of N children: 2,000 services took 4.8 s to stop, and it grew as N squared."""
    count = 300
    manifest = make_manifest(**{f"s{i}": "exec sleep 60" for i in range(count)})
    looks = 0
    real = reaper.children

    def counted(pid: int | str = "self") -> set[int]:
        nonlocal looks
        looks += pid == "self"
        return real(pid)

    monkeypatch.setattr(reaper, "children", counted)
    async with Host(manifest) as host:
        await wait_until(host, lambda s: all(x.state is S.RUNNING for x in s.values()), timeout=30)
        before = looks
        with anyio.fail_after(30):
            await host.shutdown()
        during = looks - before
        assert all(x.state is S.STOPPED for x in host.snapshot().values())
    assert not list(tagged_pids(token))
    assert zombie_children() == []
    assert during <= count // 10, f"{during} looks at tuisup's children to stop {count} services"


async def test_stopping_many_services_does_not_overflow_the_signal_wakeup_socket(
    make_manifest: Callable[..., Manifest], token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: every exit sent tuisup a SIGCHLD, one byte each into the event loop's
    wakeup socket, which holds about 280. Stopping 2,000 services overflowed it: Python
    printed "Exception ignored when trying to write to the signal wakeup fd" on stderr
    once per lost signal (1,420 times), and a Ctrl-C lost there would go unheard."""
    lost: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda report: lost.append(repr(report.exc_value)))
    count = 600
    manifest = make_manifest(**{f"s{i}": "exec sleep 60" for i in range(count)})
    async with Host(manifest) as host:
        await wait_until(host, lambda s: all(x.state is S.RUNNING for x in s.values()), timeout=30)
        with anyio.fail_after(30):
            await host.shutdown()
    assert not list(tagged_pids(token))
    assert not lost, f"{len(lost)} signals lost, e.g. {lost[0]}"
