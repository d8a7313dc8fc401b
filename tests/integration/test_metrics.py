"""`[tuisup] metrics` serves Prometheus text that prometheus_client's own parser reads right."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import anyio
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait_until
from tuisup.engine import Host, ServiceState
from tuisup.model import Health
from tuisup.model.record import replace
from tuisup.spec import BackoffKind, HealthCheck, HealthKind, Manifest

S = ServiceState
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> tuple[str, str]:
    """The `/metrics` page and its content type."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return answer.read().decode(), answer.headers["Content-Type"]


async def samples(port: int) -> Samples:
    text, kind = await anyio.to_thread.run_sync(scrape, port)
    assert kind.startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def memory_of(found: Samples, service: str) -> float | None:
    return value(found, "tuisup_service_memory_bytes", service=service)


async def scraped_until(port: int, check: Callable[[Samples], bool]) -> Samples:
    """Scrape every 0.1 s until `check` holds (what is scraped sends no event)."""
    with anyio.fail_after(10):
        while not check(found := await samples(port)):
            await anyio.sleep(0.1)
    return found


def with_metrics(manifest: Manifest, port: int) -> Manifest:
    settings = replace(manifest.settings, metrics=("127.0.0.1", port))
    return replace(manifest, settings=settings)


async def test_metrics_follow_a_crash_a_restart_and_a_health_change(
    make_manifest: Callable[..., Manifest], tmp_path: Path
) -> None:
    check = HealthCheck(
        kind=HealthKind.COMMAND, target="test -e ok", argv=("/bin/sh", "-c", "test -e ok")
    )
    check = replace(check, interval=0.1, retries=1)
    manifest = make_manifest(
        web="echo one; echo two >&2; exec sleep 60",
        crashy=("exit 3", {"max_restarts": 1, "backoff": BackoffKind.IMMEDIATE}),
        checked=("exec sleep 60", {"healthcheck": check}),
    )
    port = free_port()
    async with Host(with_metrics(manifest, port)) as host:
        await wait_until(
            host,
            lambda s: (
                s["crashy"].state is S.FAILED
                and s["web"].state is S.RUNNING
                and s["checked"].health is Health.UNHEALTHY
            ),
        )
        found = await samples(port)
        assert value(found, "tuisup_service_up", service="web") == 1
        assert value(found, "tuisup_service_up", service="crashy") == 0
        assert value(found, "tuisup_service_state", service="crashy", state="failed") == 1
        assert value(found, "tuisup_service_state", service="crashy", state="running") == 0
        crashed = value(found, "tuisup_service_exits_total", service="crashy", code="3", signal="")
        assert crashed == 2, "it crashed, was restarted, crashed and failed"
        assert value(found, "tuisup_service_restarts_total", service="crashy") == 1
        assert value(found, "tuisup_service_restarts_total", service="web") == 0
        assert value(found, "tuisup_service_log_lines_total", service="web", stream="stdout") == 1
        assert value(found, "tuisup_service_log_lines_total", service="web", stream="stderr") == 1
        assert value(found, "tuisup_service_healthy", service="checked") == 0
        assert value(found, "tuisup_service_healthy", service="web") is None, "it has no check"
        assert value(found, "tuisup_service_start_seconds_count", service="web") == 1
        inf = value(found, "tuisup_service_start_seconds_bucket", service="web", le="+Inf")
        assert inf == 1

        await host.restart("web")
        (tmp_path / "ok").touch()
        await wait_until(
            host, lambda s: s["checked"].health is Health.HEALTHY and s["web"].state is S.RUNNING
        )
        found = await samples(port)
        assert value(found, "tuisup_service_restarts_total", service="web") == 1
        assert value(found, "tuisup_service_restarts_total", service="crashy") == 1
        assert (
            value(found, "tuisup_service_exits_total", service="web", code="", signal="SIGTERM")
            == 1
        )
        crashed = value(found, "tuisup_service_exits_total", service="crashy", code="3", signal="")
        assert crashed == 2
        assert value(found, "tuisup_service_healthy", service="checked") == 1
        assert value(found, "tuisup_service_start_seconds_count", service="web") == 2
        # Process statistics are the cached ones; a scrape that finds them old asks for more.
        found = await scraped_until(port, lambda f: bool(memory_of(f, "web")))
        assert value(found, "tuisup_service_cpu_seconds_total", service="web") is not None
        assert memory_of(found, "crashy") == 0, "it has no process"


def test_no_metrics_no_server_and_no_prometheus_client(tmp_path: Path) -> None:
    code = (
        "import sys, anyio\n"
        "from tuisup.engine import Host\n"
        "from tuisup.manifest import load_manifest\n"
        "async def main():\n"
        "    async with Host(load_manifest(sys.argv[1])):\n"
        "        pass\n"
        "anyio.run(main)\n"
        "print(sorted(m for m in sys.modules if m.startswith('prometheus')))\n"
    )
    (tmp_path / "services.toml").write_text('[services.web]\ncommand = "true"\n')
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "services.toml")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "[]\n"


def test_a_metrics_address_in_use_is_said_before_any_service_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "services.toml").write_text(
            f'[tuisup]\nmetrics = {port}\n[services.web]\ncommand = "touch ran"\n'
        )
        done = subprocess.run(
            [sys.executable, "-m", "tuisup", "--no-tui"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"tuisup: metrics: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )
    assert not (tmp_path / "ran").exists()
    assert not (tmp_path / ".tuisup" / "tuisup.sock").exists()
