"""Scaling a replicated service while it runs: the difference only, survivors untouched."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.conftest import tagged_pids, wait_until
from tuisup.engine import Host, ServiceState
from tuisup.engine.events import ManifestReloaded, Scaled
from tuisup.manifest import load_manifest
from tuisup.model import CannotScale, UnknownService

S = ServiceState

WORKERS = """
[services.worker]
command = "sleep 60"
replicas = @N@
port = 41000
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[services.api]
command = "sleep 61"
depends_on = ["worker"]
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[services.db]
command = "sleep 62"
port = 41010
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }
"""


def write(path: Path, token: str, count: int, extra: str = "") -> None:
    text = WORKERS.replace("@N@", str(count)).replace("@TOKEN@", token)
    path.write_text(textwrap.dedent(text) + extra)


def workers(views: dict[str, object]) -> list[str]:
    return [name for name in views if name.startswith("worker.")]


def pids(host: Host) -> dict[str, int | None]:
    return {name: view.pid for name, view in host.snapshot().items()}


def all_running(views: dict[str, object]) -> bool:
    return all(v.state is S.RUNNING for v in views.values())  # type: ignore[attr-defined]


@asynccontextmanager
async def running_workers(tmp_path: Path, token: str) -> AsyncIterator[tuple[Path, Host]]:
    """The manifest of two workers written in tmp_path, and a host with all of it running."""
    path = tmp_path / "services.toml"
    write(path, token, 2)
    async with Host(load_manifest(path)) as host:
        await wait_until(host, all_running)
        yield path, host


async def test_a_manifest_edit_of_replicas_applies_the_difference_only(
    tmp_path: Path, token: str
) -> None:
    async with running_workers(tmp_path, token) as (path, host):
        before = pids(host)
        write(path, token, 4)
        seq = host.bus.last_seq
        assert await host.reload()
        reloaded = [e for e in host.bus.since(seq) if isinstance(e, ManifestReloaded)]
        assert [(e.added, e.removed, e.changed, e.updated) for e in reloaded] == [
            (("worker.2", "worker.3"), (), (), ())
        ]
        views = await wait_until(host, all_running)
        assert workers(views) == ["worker.0", "worker.1", "worker.2", "worker.3"]
        after = pids(host)
        assert {n: after[n] for n in before} == before  # survivors keep their pids
        assert views["worker.3"].spec.port == 41003
        assert host.graph.needs["api"] == dict.fromkeys(workers(views), "started")

        write(path, token, 1)
        assert await host.reload()
        views = host.snapshot()
        assert workers(views) == ["worker.0"] and views["worker.0"].pid == before["worker.0"]
        assert sorted(tagged_pids(token)) == sorted(p for p in pids(host).values() if p)


async def test_scale_up_and_down_keeps_the_survivors_and_stops_the_highest(
    tmp_path: Path, token: str
) -> None:
    async with running_workers(tmp_path, token) as (_, host):
        before = pids(host)
        seq = host.bus.last_seq
        await host.scale("worker", 5)
        views = host.snapshot()
        assert workers(views) == [f"worker.{i}" for i in range(5)]
        assert all(views[f"worker.{i}"].state in (S.STARTING, S.RUNNING) for i in range(5))
        assert {n: pids(host)[n] for n in before} == before
        scaled = [e for e in host.bus.since(seq) if isinstance(e, Scaled)]
        assert [(e.service, e.replicas, e.added, e.removed) for e in scaled] == [
            ("worker", 5, ("worker.2", "worker.3", "worker.4"), ())
        ]
        await host.scale("worker", 1)
        assert workers(host.snapshot()) == ["worker.0"]
        assert pids(host)["worker.0"] == before["worker.0"]
        assert pids(host)["api"] == before["api"]  # a dependent is updated in place


async def test_what_cannot_be_scaled_is_refused_and_nothing_moves(
    tmp_path: Path, token: str
) -> None:
    async with running_workers(tmp_path, token) as (_, host):
        before = pids(host)
        with pytest.raises(CannotScale, match="api has no replicas key"):
            await host.scale("api", 2)
        with pytest.raises(CannotScale, match="worker's ports 41000-41010 would overlap db's"):
            await host.scale("worker", 11)
        with pytest.raises(UnknownService, match='did you mean "worker"'):
            await host.scale("wrker", 2)
        assert pids(host) == before


async def test_a_scale_outlives_a_reload_unless_the_file_changes_replicas(
    tmp_path: Path, token: str
) -> None:
    async with running_workers(tmp_path, token) as (path, host):
        await host.scale("worker", 3)
        write(path, token, 2, extra='\n[services.new]\ncommand = "sleep 63"\n')
        assert await host.reload()
        assert len(workers(host.snapshot())) == 3  # an edit elsewhere keeps the scale
        write(path, token, 4)
        assert await host.reload()
        assert len(workers(host.snapshot())) == 4  # the file's own new count wins


async def test_a_scaled_service_keeps_its_place_in_the_manifests_order(
    tmp_path: Path, token: str
) -> None:
    """Regression: replicas made by a scale came first in the snapshot (and `tuisup ps`)."""
    path = tmp_path / "services.toml"
    before = f'[services.first]\ncommand = "sleep 63"\nenv = {{ TUISUP_TEST_TOKEN = "{token}" }}\n'
    path.write_text(before + textwrap.dedent(WORKERS.replace("@N@", "1").replace("@TOKEN@", token)))
    async with Host(load_manifest(path)) as host:
        await host.scale("worker", 3)
        assert list(host.snapshot()) == ["first", "worker.0", "worker.1", "worker.2", "api", "db"]
