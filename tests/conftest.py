"""Shared helpers: specs and manifests built in code, event-driven waits, leak detection."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tuisup.engine import Host, ServiceStatus
from tuisup.engine.events import Event
from tuisup.spec import HostSettings, Manifest, ServiceSpec

Snapshot = dict[str, ServiceStatus]


@pytest.fixture
def token() -> str:
    """A unique value put in every test service's environment, to find its processes."""
    return uuid.uuid4().hex


@pytest.fixture
def make_manifest(tmp_path: Path, token: str) -> Callable[..., Manifest]:
    """Build a Manifest of shell-command services: make_manifest(web="sleep 9", ...)."""

    def make(log_dir: bool = True, shutdown_timeout: float = 10.0, **services: Any) -> Manifest:
        specs = {}
        for name, value in services.items():
            command, options = (value, {}) if isinstance(value, str) else value
            options.setdefault("env", {})
            options["env"] = {**options["env"], "TUISUP_TEST_TOKEN": token}
            specs[name] = ServiceSpec(
                name=name,
                argv=("/bin/sh", "-c", command),
                command=command,
                cwd=tmp_path,
                shell=True,
                **options,
            )
        settings = HostSettings(
            log_dir=tmp_path / "logs" if log_dir else None, shutdown_timeout=shutdown_timeout
        )
        return Manifest(tmp_path / "services.toml", settings, specs)

    return make


async def wait_until(
    host: Host, predicate: Callable[[Snapshot], bool], timeout: float = 10.0
) -> Snapshot:
    """Wait, event by event, until `predicate(host.snapshot())` holds."""
    subscription = host.subscribe()
    if predicate(subscription.snapshot):
        return subscription.snapshot
    with anyio.fail_after(timeout):
        async for _ in subscription:
            snapshot = host.snapshot()
            if predicate(snapshot):
                return snapshot
    raise AssertionError("unreachable")


async def wait_event(
    host: Host, predicate: Callable[[Event], bool], after: int, timeout: float = 10.0
) -> Event:
    """Wait for the first event after seq `after` that satisfies `predicate`."""
    with anyio.fail_after(timeout):
        async for batch in host.bus.stream(after):
            for event in batch:
                if predicate(event):
                    return event
    raise AssertionError("unreachable")


def tagged_pids(token: str) -> Iterator[int]:
    """Yield live (non-zombie) processes whose environment carries `token`."""
    needle = f"TUISUP_TEST_TOKEN={token}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in (b"Z", b"X"):
            yield int(entry)


def zombie_children() -> list[int]:
    """Return this process's children that are zombies."""
    from tuisup.engine.reaper import children, stat

    return [pid for pid in children() if (info := stat(pid)) and info[0] == "Z"]


async def wait_gone(token: str, timeout: float = 5.0) -> None:
    """Wait until no process carries `token` (polling /proc: the kernel sends no event)."""
    with anyio.fail_after(timeout):
        while list(tagged_pids(token)):
            await anyio.sleep(0.02)
