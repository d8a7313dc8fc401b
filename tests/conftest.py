"""Shared helpers: specs and manifests built in code, event-driven waits, leak detection."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tuisup.engine import Host, ServiceView
from tuisup.engine.events import Event
from tuisup.spec import HostSettings, LogFormat, LogOptions, Manifest, ServiceSpec

RAW_LOGS = LogOptions(format=LogFormat.RAW)
"""A service's `logs` for tests that compare its log file with the bytes it wrote."""
_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d ")


def untimed(lines: list[str]) -> list[str]:
    """Log file lines without the time each starts with (`log_timestamps`, the default)."""
    for line in lines:
        assert _STAMP.match(line), f"no time at the start of {line!r}"
    return [_STAMP.sub("", line, count=1) for line in lines]


Snapshot = dict[str, ServiceView]


@pytest.fixture
def token() -> str:
    """A unique value put in every test service's environment, to find its processes."""
    return uuid.uuid4().hex


def write_manifest(folder: Path, text: str, token: str = "") -> Path:
    """Write `text` (dedented, its `@TOKEN@`s made the test's token) as folder/services.toml.

    Returns:
        The manifest's path.
    """
    path = folder / "services.toml"
    path.write_text(textwrap.dedent(text).replace("@TOKEN@", token))
    return path


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
        return Manifest(path=tmp_path / "services.toml", settings=settings, services=specs)

    return make


async def wait_until(
    host: Host, predicate: Callable[[Snapshot], bool], timeout: float = 10.0
) -> Snapshot:
    """Wait, event by event, until `predicate(host.snapshot())` holds."""
    subscription = await host.subscribe()
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


class Tuisup:
    """A `python -m tuisup` subprocess whose stdout lines are read in a thread.

    Every one started is SIGKILLed when its test ends (its lifeline then kills its
    services), so a failing test leaves nothing running.
    """

    started: list[Tuisup] = []

    def __init__(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tuisup", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        Tuisup.started.append(self)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def expect(self, predicate, timeout: float = 10.0) -> str:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"timed out; saw: {self.lines[-20:]}") from None
            if line is None:
                raise AssertionError(f"exited first; saw: {self.lines[-20:]}")
            self.lines.append(line)
            if predicate(line):
                return line

    def finish(self, timeout: float = 15.0) -> int:
        code = self.proc.wait(timeout=timeout)
        while (line := self._queue.get(timeout=5)) is not None:
            self.lines.append(line)
        return code


@pytest.fixture(autouse=True)
def _kill_leftover_tuisups() -> Iterator[None]:
    yield
    while Tuisup.started:
        proc = Tuisup.started.pop().proc
        if proc.poll() is None:
            proc.kill()
            proc.wait()
