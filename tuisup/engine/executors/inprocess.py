"""Provides the executor for Python targets that run inside tuisup: `thread` and `async`."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

from anyio.abc import TaskGroup

from tuisup.engine.capture import CURRENT, LogHandler, ServiceOutput, install
from tuisup.engine.executors.async_ import LoopWatchdog, TaskRun
from tuisup.engine.executors.base import Executor, Run, StartError
from tuisup.engine.executors.thread import ThreadRun
from tuisup.engine.logs import LogStore
from tuisup.service import CancellationToken, Context, TargetError, format_crash, load_target
from tuisup.spec import ExecutorKind, ServiceSpec


class InProcessExecutor(Executor):
    """Imports a target in tuisup's process and runs it in a thread or as a task.

    With no `executor` in the manifest, a coroutine function (or a Service with
    `run_async`) runs as a task on the event loop, anything else in a thread.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.watchdog = LoopWatchdog()
        self._stuck: dict[str, ThreadRun] = {}

    def refresh(self, spec: ServiceSpec, changed: list[Path]) -> None:
        """Reload the changed modules, then the target's own, so the next start runs new code.

        Limits: objects made from the old code (instances, references taken with `from x
        import y` in modules that did not change) keep the old code until they are remade.
        """
        assert spec.target is not None
        super().refresh(spec, changed)
        files = {str(path.resolve()) for path in changed}
        target_module = spec.target.partition(":")[0]
        for name, module in list(sys.modules.items()):
            path = getattr(module, "__file__", None)
            if path and str(Path(path).resolve()) in files and name != target_module:
                with contextlib.suppress(Exception):  # a broken module fails at start instead
                    importlib.reload(module)
        target = sys.modules.get(target_module)
        if target is not None:
            with contextlib.suppress(Exception):
                importlib.reload(target)

    async def start(self, spec: ServiceSpec, logs: LogStore, tg: TaskGroup) -> Run:
        """Import the target and start it; see `Executor.start`."""
        assert spec.target is not None
        stuck = self._stuck.get(spec.name)
        if stuck is not None and stuck.thread.is_alive():
            raise StartError(
                f"cannot start: the thread of an earlier run ({stuck.thread.name}) is still running"
            )
        try:
            target = load_target(spec.target, [self.root, spec.cwd])
        except TargetError as exc:
            details = "".join(traceback.format_exception(exc.__cause__ or exc))
            raise StartError(f"cannot start: {exc}", details) from exc
        kind = spec.executor or (ExecutorKind.ASYNC if target.is_async else ExecutorKind.THREAD)
        if kind is ExecutorKind.ASYNC and not target.is_async:
            raise StartError(f'cannot start: executor "async" needs a coroutine: {spec.target}')
        if kind is ExecutorKind.THREAD and target.is_async:
            raise StartError(f'cannot start: executor "thread" runs sync code: {spec.target}')
        install()
        loop = asyncio.get_running_loop()
        output = ServiceOutput(logs, spec.name, loop)
        token = CancellationToken()  # ours to cancel: reading ctx.token marks it asked for
        ctx = Context(spec.name, token, spec.cwd)
        _route_log(ctx.log, output)
        try:
            with _as_service(output):  # what __init__ prints is the service's
                call = target.bind(ctx)
        except TargetError as exc:
            output.close()
            details = format_crash(exc.__cause__ or exc)
            raise StartError(f"cannot start: {exc}", details) from exc
        if kind is ExecutorKind.ASYNC:
            run: Run = TaskRun(spec.name, call, ctx, token, output, self.watchdog)
            tg.start_soon(run.main)  # type: ignore[attr-defined]
            return run
        thread_run = ThreadRun(spec.name, call, ctx, token, output, loop, self._stuck)
        thread_run.thread.start()
        return thread_run


@contextlib.contextmanager
def _as_service(output: ServiceOutput) -> Iterator[None]:
    """Route what runs inside to `output`, as the service's own code is."""
    token = CURRENT.set(output)
    try:
        yield
    finally:
        CURRENT.reset(token)


def _route_log(logger: logging.Logger, output: ServiceOutput) -> None:
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.addHandler(LogHandler(output))
    logger.propagate = False
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
