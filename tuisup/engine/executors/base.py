"""Provides the executor interface shared by every way of running a service."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import anyio
from anyio.abc import TaskGroup

from tuisup.engine.logs import LogStore
from tuisup.engine.status import ExitStatus
from tuisup.spec import ExecutorKind, ServiceSpec

KILL_GRACE = 2.0
"""Seconds a stop may take after SIGKILL before it gives up waiting."""


class StartError(Exception):
    """A service could not be started at all (no such executable, bad cwd, import error).

    `details` (a traceback, say) goes to the service's log under the one-line message.
    """

    def __init__(self, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.details = details


class Run(ABC):
    """One incarnation of a service, from its start until it has ended and been cleaned up.

    A subclass sets `_status` and then `_ended` when the run is over.
    """

    pid: int | None = None
    """The OS process id, for process-backed runs."""
    kind: ExecutorKind = ExecutorKind.PROCESS
    """The executor running it (for a target, after the default was resolved)."""

    def __init__(self) -> None:
        self._status: ExitStatus | None = None
        self._ended = anyio.Event()

    async def wait(self) -> ExitStatus:
        """Return once the run has ended and nothing of it is left running."""
        await self._ended.wait()
        assert self._status is not None
        return self._status

    def when_ended(self, tg: TaskGroup, tell: Callable[[ExitStatus], None]) -> None:
        """Call `tell` with the run's status once it has ended, from a task in `tg`."""
        tg.start_soon(self._tell_when_ended, tell)

    async def _tell_when_ended(self, tell: Callable[[ExitStatus], None]) -> None:
        tell(await self.wait())

    async def _escalate(self, timeout: float) -> None:
        """After a stop was asked for: wait `timeout`, then `kill` and wait KILL_GRACE more.

        Shielded: a stop that was begun is finished, even if the caller is cancelled.
        """
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(timeout):
                await self._ended.wait()
            if not self._ended.is_set():
                self.kill()
                with anyio.move_on_after(KILL_GRACE):
                    await self._ended.wait()

    @property
    def up(self) -> bool:
        """Whether the run is up already: `started` would return at once."""
        return True

    async def started(self) -> None:  # noqa: B027 - most runs are up once started
        """Return once the service is up (a Python target imported in its child).

        Raises:
            StartError: It could not start; the run ends by itself.
        """

    @abstractmethod
    async def stop(self, sig: signal.Signals, timeout: float) -> ExitStatus:
        """Ask the run to end with `sig` and force it after `timeout`.

        A stop never takes longer than `timeout + KILL_GRACE`.
        """

    @abstractmethod
    def kill(self) -> None:
        """End the run at once, without grace."""


class Executor(ABC):
    """Knows how to start one kind of service."""

    async def refresh(self, spec: ServiceSpec, changed: list[Path]) -> None:
        """Before a restart for changed files: make the next start use the new code.

        A child process reads its files afresh; in-process executors also reload modules.
        Either way the changed modules' cached bytecode goes (in a worker thread): it is
        trusted when the source's size and mtime in whole seconds match, which a same-size
        edit within a second of the last import (`VERSION = 1` → `2`) does.
        """
        await anyio.to_thread.run_sync(_forget_bytecode, changed)

    @abstractmethod
    async def start(self, spec: ServiceSpec, logs: LogStore, tg: TaskGroup) -> Run:
        """Start `spec`, sending its output to `logs`; watch it with tasks in `tg`.

        Raises:
            StartError: The service cannot start; the message says why.
        """


def _forget_bytecode(changed: list[Path]) -> None:
    """Remove the cached bytecode of the changed Python files."""
    for path in changed:
        if path.suffix == ".py":
            with contextlib.suppress(OSError, ValueError):
                os.unlink(importlib.util.cache_from_source(str(path)))
