"""Replicas on a real host: their own processes, variables and ports; names that stand for all."""

from __future__ import annotations

import socket
from pathlib import Path

import anyio

from tests.conftest import tagged_pids, wait_until, write_manifest
from tuisup.engine import Host, ServiceState
from tuisup.manifest import load_manifest
from tuisup.model import UnknownService

S = ServiceState


def free_ports(count: int) -> int:
    """A first port of `count` consecutive ones that nothing listens on now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count < 65535 and all(_free(first + i) for i in range(count)):
            return first
    raise AssertionError("no free ports")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def manifest(tmp_path: Path, token: str, text: str) -> Path:
    return write_manifest(tmp_path, text, token)


async def test_each_replica_runs_with_its_own_index_port_and_variables(
    tmp_path: Path, token: str
) -> None:
    first = free_ports(2)
    path = manifest(
        tmp_path,
        token,
        f"""
        [services.worker]
        command = "echo {{replica}} $PORT $TUISUP_REPLICA $TUISUP_PORT_DB; exec sleep 9"
        shell = true
        replicas = 2
        port = {first}
        env = {{ TUISUP_TEST_TOKEN = "@TOKEN@" }}

        [services.db]
        command = "sleep 60"
        port = {first + 10}
        env = {{ TUISUP_TEST_TOKEN = "@TOKEN@" }}
        """,
    )
    async with Host(load_manifest(path)) as host:
        views = await wait_until(host, lambda s: all(v.state is S.RUNNING for v in s.values()))
        assert list(views) == ["worker.0", "worker.1", "db"]
        assert [views[n].replica for n in views] == [0, 1, None]
        assert len({v.pid for v in views.values()}) == 3
        pids = sorted(v.pid for v in views.values())  # type: ignore[type-var]
        # A shell caught in its `exec sleep` shows no environment for a moment: look again.
        with anyio.fail_after(5):
            while sorted(tagged_pids(token)) != pids:
                await anyio.sleep(0.02)
        for i in range(2):
            with anyio.fail_after(5):
                while not await host.logs(f"worker.{i}"):
                    await anyio.sleep(0.02)
            lines = [line for batch in await host.logs(f"worker.{i}") for line in batch.lines]
            assert f"{i} {first + i} {i} {first + 10}" in lines[0]
        assert (tmp_path / ".tuisup" / "logs" / "worker.1.log").exists()


async def test_a_port_taken_by_something_else_fails_that_replica_plainly(
    tmp_path: Path, token: str
) -> None:
    first = free_ports(2)
    path = manifest(
        tmp_path,
        token,
        f"""
        [services.web]
        command = "sleep 60"
        replicas = 2
        port = {first}
        env = {{ TUISUP_TEST_TOKEN = "@TOKEN@" }}
        """,
    )
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", first + 1))
        squatter.listen()
        async with Host(load_manifest(path)) as host:
            views = await wait_until(
                host, lambda s: s["web.0"].state is S.RUNNING and s["web.1"].state is S.FAILED
            )
            reason = f"cannot start: port {first + 1} is taken (Address already in use)"
            assert views["web.1"].reason == reason
            lines = [line for batch in await host.logs("web.1") for line in batch.lines]
            assert any(reason in line for line in lines)


async def test_a_dependency_on_a_replicated_table_waits_for_every_replica(
    tmp_path: Path, token: str
) -> None:
    path = manifest(
        tmp_path,
        token,
        """
        [services.worker]
        command = "sleep 60"
        replicas = 2
        healthcheck = { command = "test -e ready-$TUISUP_REPLICA", interval = 0.1 }
        env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

        [services.api]
        command = "sleep 60"
        depends_on = { worker = "healthy" }
        env = { TUISUP_TEST_TOKEN = "@TOKEN@" }
        """,
    )
    async with Host(load_manifest(path)) as host:
        views = await wait_until(host, lambda s: s["api"].state is S.WAITING)
        (tmp_path / "ready-0").touch()
        views = await wait_until(host, lambda s: s["api"].waiting_for == ("worker.1",))
        assert views["api"].state is S.WAITING
        (tmp_path / "ready-1").touch()
        await wait_until(host, lambda s: s["api"].state is S.RUNNING)


async def test_a_replicated_tables_name_moves_all_its_replicas(tmp_path: Path, token: str) -> None:
    path = manifest(
        tmp_path,
        token,
        """
        [services.worker]
        command = "sleep 60"
        replicas = 3
        env = { TUISUP_TEST_TOKEN = "@TOKEN@" }
        """,
    )
    async with Host(load_manifest(path)) as host:
        await wait_until(host, lambda s: all(v.state is S.RUNNING for v in s.values()))
        await host.stop("worker")
        assert {v.state for v in host.snapshot().values()} == {S.STOPPED}
        await host.start("worker")
        await wait_until(host, lambda s: all(v.state is S.RUNNING for v in s.values()))
        await host.stop("worker.1")
        assert [v.state for v in host.snapshot().values()] == [S.RUNNING, S.STOPPED, S.RUNNING]
        try:
            await host.stop("workr")
        except UnknownService as exc:
            assert str(exc) == 'unknown service "workr" (did you mean "worker"?)'
        else:
            raise AssertionError("no error")
