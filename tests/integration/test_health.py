"""Health checks against real services on loopback: each kind passes and fails, timeouts,
restart_on_unhealthy through backoff and budget, and nothing a check ran is left behind."""

from __future__ import annotations

import shlex
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from tests.conftest import tagged_pids, wait_event, wait_gone, zombie_children
from tuisup.engine import Host, ServiceState
from tuisup.engine.events import Event, Health, HealthChanged, RestartScheduled, StateChanged
from tuisup.engine.reaper import stat
from tuisup.spec import BackoffKind, HealthCheck, HealthKind, Manifest

S = ServiceState
SERVER = Path(__file__).with_name("probe_server.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server(port: int, mode: str) -> str:
    return f"exec {shlex.quote(sys.executable)} {shlex.quote(str(SERVER))} {port} {mode}"


def check(kind: HealthKind, **options: object) -> HealthCheck:
    timing: dict[str, object] = {"interval": 0.2, "timeout": 0.5, "retries": 2}
    return HealthCheck(kind=kind, **{**timing, **options})  # type: ignore[arg-type]


def http(port: int, path: str = "/health", **options: object) -> HealthCheck:
    url = f"http://127.0.0.1:{port}{path}"
    return check(HealthKind.HTTP, target=url, port=port, path=path, **options)


def tcp(port: int, **options: object) -> HealthCheck:
    return check(HealthKind.TCP, target=f"127.0.0.1:{port}", port=port, **options)


def command(text: str, **options: object) -> HealthCheck:
    return check(HealthKind.COMMAND, target=text, argv=("/bin/sh", "-c", text), **options)


async def health_of(host: Host, name: str, health: Health, timeout: float = 10.0) -> HealthChanged:
    event = await wait_event(
        host,
        lambda e: isinstance(e, HealthChanged) and e.service == name and e.health is health,
        after=0,
        timeout=timeout,
    )
    assert isinstance(event, HealthChanged)
    return event


@pytest.mark.parametrize("mode", ["200", "204"])
async def test_http_check_passes_on_2xx(make_manifest: Callable[..., Manifest], mode: str) -> None:
    port = free_port()
    manifest = make_manifest(web=(server(port, mode), {"healthcheck": http(port)}))
    async with Host(manifest) as host:
        await health_of(host, "web", Health.HEALTHY)
        assert host.snapshot()["web"].health is Health.HEALTHY


async def test_http_check_fails_on_other_statuses_and_names_it(
    make_manifest: Callable[..., Manifest],
) -> None:
    port = free_port()
    manifest = make_manifest(web=(server(port, "503"), {"healthcheck": http(port)}))
    async with Host(manifest) as host:
        event = await health_of(host, "web", Health.UNHEALTHY)
        assert event.reason == "HTTP 503"
        assert event.failures == 2
        assert host.snapshot()["web"].state is S.RUNNING  # no restart unless asked


async def test_http_check_with_an_expected_status(
    make_manifest: Callable[..., Manifest],
) -> None:
    port = free_port()
    manifest = make_manifest(web=(server(port, "503"), {"healthcheck": http(port, status=503)}))
    async with Host(manifest) as host:
        await health_of(host, "web", Health.HEALTHY)


async def test_a_server_that_closes_at_once_fails_an_http_check(
    make_manifest: Callable[..., Manifest],
) -> None:
    port = free_port()
    manifest = make_manifest(web=(server(port, "tcp"), {"healthcheck": http(port)}))
    async with Host(manifest) as host:
        event = await health_of(host, "web", Health.UNHEALTHY)
        assert event.reason in ("no HTTP response", "connection closed", "Connection reset by peer")


async def test_a_hung_http_endpoint_fails_by_timeout(
    make_manifest: Callable[..., Manifest],
) -> None:
    port = free_port()
    hung = http(port, timeout=0.3)
    manifest = make_manifest(web=(server(port, "hang"), {"healthcheck": hung}))
    async with Host(manifest) as host:
        event = await health_of(host, "web", Health.UNHEALTHY)
        assert event.reason == "timed out after 0.3s"


async def test_tcp_check_passes_when_the_port_listens_and_fails_when_not(
    make_manifest: Callable[..., Manifest],
) -> None:
    up, down = free_port(), free_port()
    manifest = make_manifest(
        up=(server(up, "tcp"), {"healthcheck": tcp(up)}),
        down=("exec sleep 30", {"healthcheck": tcp(down)}),
    )
    async with Host(manifest) as host:
        await health_of(host, "up", Health.HEALTHY)
        event = await health_of(host, "down", Health.UNHEALTHY)
        assert event.reason == "Connection refused"


async def test_command_check_passes_on_exit_0_and_reports_the_last_output_line(
    make_manifest: Callable[..., Manifest],
) -> None:
    manifest = make_manifest(
        good=("exec sleep 30", {"healthcheck": command("true")}),
        bad=("exec sleep 30", {"healthcheck": command("echo checking; echo no response; exit 2")}),
    )
    async with Host(manifest) as host:
        await health_of(host, "good", Health.HEALTHY)
        event = await health_of(host, "bad", Health.UNHEALTHY)
        assert event.reason == "exit code 2: no response"


async def test_a_hung_check_command_is_killed_with_its_group_and_reaped(
    make_manifest: Callable[..., Manifest], token: str, tmp_path: Path
) -> None:
    # Each check starts a grandchild in its group, then hangs; its timeout kills both.
    hung = command("sleep 60 & echo $! >> grandchildren; exec sleep 60", timeout=0.3)
    manifest = make_manifest(svc=("exec sleep 30", {"healthcheck": hung}))
    async with Host(manifest) as host:
        event = await health_of(host, "svc", Health.UNHEALTHY)
        assert event.reason == "timed out after 0.3s"
        # Checks run one at a time: every one but the last has been killed and reaped.
        written = (tmp_path / "grandchildren").read_text()
        finished = [int(pid) for pid in written.splitlines(keepends=True) if pid.endswith("\n")]
        assert len(finished) >= 2
        for pid in finished[:-1]:
            assert stat(pid) is None or stat(pid)[0] == "Z"  # type: ignore[index]
    await wait_gone(token)
    assert zombie_children() == []


async def test_no_check_process_is_left_after_stop(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    # A check that is mid-run when the service stops: it is cancelled, killed, reaped.
    slow = command("exec sleep 60", timeout=30, interval=0.1)
    manifest = make_manifest(svc=("exec sleep 30", {"healthcheck": slow}))
    async with Host(manifest) as host:
        with anyio.fail_after(5):  # the service and its check (no event says so: poll)
            while len(list(tagged_pids(token))) < 2:
                await anyio.sleep(0.01)
        await host.stop("svc")
        assert list(tagged_pids(token)) == []
        assert zombie_children() == []
        assert host.snapshot()["svc"].health is None


async def test_health_resets_to_unknown_when_the_run_ends(
    make_manifest: Callable[..., Manifest],
) -> None:
    manifest = make_manifest(svc=("exec sleep 30", {"healthcheck": command("true")}))
    async with Host(manifest) as host:
        await health_of(host, "svc", Health.HEALTHY)
        after = host.bus.last_seq
        await host.stop("svc")
        event = await wait_event(host, lambda e: isinstance(e, HealthChanged), after)
        assert isinstance(event, HealthChanged) and event.health is Health.UNKNOWN


async def test_restart_on_unhealthy_restarts_through_backoff_and_budget(
    make_manifest: Callable[..., Manifest],
) -> None:
    options = {
        "healthcheck": command("exit 1", interval=0.1, retries=2),
        "restart_on_unhealthy": True,
        "backoff": BackoffKind.LINEAR,
        "backoff_delay": 0.1,
        "jitter": 0.0,
        "max_restarts": 2,
    }
    manifest = make_manifest(svc=("exec sleep 30", options))
    async with Host(manifest) as host:
        failed = await wait_event(
            host,
            lambda e: isinstance(e, StateChanged) and e.state is S.FAILED,
            after=0,
            timeout=20,
        )
        events: list[Event] = list(host.bus.since(0))
    assert isinstance(failed, StateChanged)
    assert failed.reason == "2 restarts in 60s"
    delays = [e.delay for e in events if isinstance(e, RestartScheduled)]
    assert delays == [pytest.approx(0.1), pytest.approx(0.2)]  # linear backoff
    stopping = [e for e in events if isinstance(e, StateChanged) and e.state is S.STOPPING]
    assert [e.reason for e in stopping] == ["unhealthy (exit code 1)"] * 3
    assert host.snapshot()["svc"].restarts == 2
