"""The host's shutdown: run once, always finished, and bounded however it is called."""

from __future__ import annotations

from collections.abc import Callable

import anyio

from tests.conftest import tagged_pids, wait_until
from tuisup.engine import Host, ServiceState
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
