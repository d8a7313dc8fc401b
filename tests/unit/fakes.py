"""Fakes for fast, exact tests of the engine: a clock that moves when told, runs on demand."""

from __future__ import annotations

import signal
from pathlib import Path

import anyio
from anyio.abc import TaskGroup

from tuisup.engine.executors import Executor, Run
from tuisup.engine.logs import LogStore
from tuisup.engine.status import ExitStatus
from tuisup.spec import ExecutorKind, ServiceSpec

EPOCH = 1_800_000_000.0


class FakeClock:
    """A Clock whose time moves only by `advance`; sleepers wake when their time comes."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, anyio.Event]] = []

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return EPOCH + self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        woken = anyio.Event()
        self._sleepers.append((self.now + seconds, woken))
        await woken.wait()

    @property
    def sleeping(self) -> int:
        """How many sleepers wait for a time to come."""
        return len(self._sleepers)

    def advance(self, seconds: float) -> None:
        """Move time on and wake whoever's time has come."""
        self.now += seconds
        due = [s for s in self._sleepers if s[0] <= self.now + 1e-9]
        self._sleepers = [s for s in self._sleepers if s not in due]
        for _, woken in due:
            woken.set()


class FakeRun(Run):
    """A run that ends when the test says so (or when it is stopped or killed)."""

    def __init__(self, kind: ExecutorKind) -> None:
        super().__init__()
        self.kind = kind
        self.stopped_with: signal.Signals | None = None

    def end(self, status: ExitStatus) -> None:
        if not self._ended.is_set():
            self._status = status
            self._ended.set()

    async def stop(self, sig: signal.Signals, timeout: float) -> ExitStatus:
        self.stopped_with = sig
        self.end(ExitStatus(signal=int(sig)))
        return await self.wait()

    def kill(self) -> None:
        self.end(ExitStatus(signal=int(signal.SIGKILL)))


class FakeExecutor(Executor):
    """Starts FakeRuns, and keeps them for the test to end."""

    def __init__(self) -> None:
        self.runs: list[FakeRun] = []

    async def start(self, spec: ServiceSpec, logs: LogStore, tg: TaskGroup) -> Run:
        run = FakeRun(spec.executor or ExecutorKind.THREAD)
        self.runs.append(run)
        return run


def spec(name: str = "svc", **options: object) -> ServiceSpec:
    """A spec of a Python target (no process is ever made: the executor is fake)."""
    return ServiceSpec(
        name=name,
        argv=(),
        command=f"fake:{name}",
        target=f"fake:{name}",
        executor=ExecutorKind.THREAD,
        cwd=Path("/"),
        **options,  # type: ignore[arg-type]
    )
