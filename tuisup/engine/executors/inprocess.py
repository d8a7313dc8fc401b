"""Provides the executor for Python targets that run inside tuisup: `thread` and `async`.

A target is imported, and its callable made (a `Service.__init__`), in a thread of its own:
an `import torch` must not freeze the loop, and with it the console and every other
service. The run's `started()` waits for that, as a child process's run waits for its
`ready`, so `start_timeout` bounds it and a stop ends it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anyio.abc import TaskGroup

from tuisup.engine.capture import LogHandler, ServiceOutput, install
from tuisup.engine.executors.async_ import LoopWatchdog, TaskRun
from tuisup.engine.executors.base import Executor, Run, StartError
from tuisup.engine.executors.loading import LoadingRun, Made
from tuisup.engine.executors.thread import ThreadRun
from tuisup.engine.logs import LogStore
from tuisup.link import HostLink
from tuisup.service import Context, Target, TargetError, format_crash, load_target
from tuisup.spec import ExecutorKind, ServiceSpec

if TYPE_CHECKING:
    from tuisup.api import HostAPI


class InProcessExecutor(Executor):
    """Imports a target in tuisup's process and runs it in a thread or as a task.

    With no `executor` in the manifest, a coroutine function (or a Service with
    `run_async`) runs as a task on the event loop, anything else in a thread.
    """

    def __init__(self, root: Path, host: HostAPI | None = None) -> None:
        self.root = root
        self.host = host
        """What the services' contexts act on and observe (`Context.events`, ...)."""
        self.watchdog = LoopWatchdog()
        self._stuck: dict[str, ThreadRun] = {}
        self._modules = ModuleLock()
        self._stale: dict[str, set[Path]] = {}
        """Per service, the files changed since its modules were last reloaded."""
        self._stale_lock = threading.Lock()

    async def refresh(self, spec: ServiceSpec, changed: list[Path]) -> None:
        """Have the next start reload the changed modules, then the target's own.

        The reload is part of that start, in its own thread: bounded by `start_timeout`,
        ended by a stop, and a module that no longer loads (a syntax error saved) fails
        the start, as it does in a fresh interpreter, instead of leaving the old code to run.

        Limits: objects made from the old code (instances, references taken with `from x
        import y` in modules that did not change) keep the old code until they are remade.
        """
        await super().refresh(spec, changed)
        with self._stale_lock:
            self._stale.setdefault(spec.name, set()).update(changed)

    async def start(self, spec: ServiceSpec, logs: LogStore, tg: TaskGroup) -> Run:
        """Return a run that makes the target in its `started()`; see `Executor.start`."""
        assert spec.target is not None
        stuck = self._stuck.get(spec.name)
        if stuck is not None and stuck.thread.is_alive():
            raise StartError(
                f"cannot start: the thread of an earlier run ({stuck.thread.name}) is still running"
            )
        install()
        output = ServiceOutput(logs, spec.name, asyncio.get_running_loop())
        link = None if self.host is None else HostLink(self.host, asyncio.get_running_loop())
        run = LoadingRun(spec, output, self._make, partial(self._begin, tg), link)
        _route_log(run.ctx.log, output)
        return run

    def _make(self, spec: ServiceSpec, ctx: Context, gone: threading.Event) -> Made | None:
        """Reload what changed, import the target, make its callable (the start's thread).

        Returns None if the start was given up meanwhile (`gone`): nothing is made then.

        Raises:
            StartError: A module did not reload, the target did not import, or its
                `__init__` raised.
        """
        assert spec.target is not None
        self._reload_changed(spec, gone)
        # Shared with other starts (Python makes concurrent imports safe), not with a
        # reload; `__init__` too, as it may import lazily.
        with self._modules.shared():
            if gone.is_set():
                return None
            target = _load(spec.target, [self.root, spec.cwd])
            kind = _kind(spec, target)
            if gone.is_set():
                return None
            return Made(_bind(target, ctx), kind)

    def _reload_changed(self, spec: ServiceSpec, gone: threading.Event) -> None:
        """Reload the modules of the files changed for `spec`, alone (the start's thread).

        They stay to reload at the next start unless this start reloaded them all: a start
        given up meanwhile may have been followed by another save (the supervisor saves
        none while a start of its own runs).
        """
        assert spec.target is not None
        with self._stale_lock:
            files = set(self._stale.get(spec.name, ()))
        if not files:
            return
        module = spec.target.partition(":")[0]
        with self._modules.alone():
            if gone.is_set():
                return
            try:
                _reload(module, files)
            except ReloadError as exc:
                cause = exc.__cause__ or exc
                reason = f"cannot start: cannot reload {exc}: {type(cause).__name__}: {cause}"
                raise StartError(reason, format_crash(cause)) from cause
        if not gone.is_set():
            with self._stale_lock:
                self._stale.pop(spec.name, None)

    def _begin(self, tg: TaskGroup, run: LoadingRun, made: Made) -> Run:
        """Start what was made, as a task of `tg` or in a thread of its own (on the loop)."""
        if made.kind is ExecutorKind.ASYNC:
            task = TaskRun(run.name, made.call, run.ctx, run.token, run.output, self.watchdog)
            tg.start_soon(task.main)
            return task
        loop = asyncio.get_running_loop()
        thread = ThreadRun(run.name, made.call, run.ctx, run.token, run.output, loop, self._stuck)
        thread.thread.start()
        return thread


def _load(spec: str, paths: list[Path]) -> Target:
    try:
        return load_target(spec, paths)
    except TargetError as exc:
        details = "".join(traceback.format_exception(exc.__cause__ or exc))
        raise StartError(f"cannot start: {exc}", details) from exc


def _kind(spec: ServiceSpec, target: Target) -> ExecutorKind:
    """The executor that runs `target`: the manifest's, else the one its kind of code needs."""
    kind = spec.executor or (ExecutorKind.ASYNC if target.is_async else ExecutorKind.THREAD)
    if kind is ExecutorKind.ASYNC and not target.is_async:
        raise StartError(f'cannot start: executor "async" needs a coroutine: {spec.target}')
    if kind is ExecutorKind.THREAD and target.is_async:
        raise StartError(f'cannot start: executor "thread" runs sync code: {spec.target}')
    return kind


def _bind(target: Target, ctx: Context) -> Callable[[], Any]:
    try:
        return target.bind(ctx)
    except TargetError as exc:
        details = format_crash(exc.__cause__ or exc)
        raise StartError(f"cannot start: {exc}", details) from exc


class ReloadError(Exception):
    """A module did not reload; the message is its name, the cause what it raised."""


def _reload(target_module: str, files: set[Path]) -> None:
    """Reload the modules loaded from `files`, then `target_module` if it is loaded.

    Raises:
        ReloadError: For the first module that did not reload.
    """
    paths = {str(path.resolve()) for path in files}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and name != target_module and str(Path(path).resolve()) in paths:
            _reload_one(name, module)
    target = sys.modules.get(target_module)
    if target is not None:
        _reload_one(target_module, target)


def _reload_one(name: str, module: Any) -> None:
    try:
        importlib.reload(module)
    except (Exception, SystemExit) as exc:  # a module that exits while reloaded too
        raise ReloadError(name) from exc


class ModuleLock:
    """Imports share it; a reload has it alone.

    Python's import lock makes imports from several threads safe, but not an import that
    reads a module while another thread reloads it (it sees it half made again).
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._sharing = 0
        self._alone = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """Hold it with the other imports, once no reload has it."""
        with self._changed:
            self._changed.wait_for(lambda: not self._alone)
            self._sharing += 1
        try:
            yield
        finally:
            with self._changed:
                self._sharing -= 1
                self._changed.notify_all()

    @contextlib.contextmanager
    def alone(self) -> Iterator[None]:
        """Hold it alone, once no import or reload has it."""
        with self._changed:
            self._changed.wait_for(lambda: not self._alone and not self._sharing)
            self._alone = True
        try:
            yield
        finally:
            with self._changed:
                self._alone = False
                self._changed.notify_all()


def _route_log(logger: logging.Logger, output: ServiceOutput) -> None:
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.addHandler(LogHandler(output))
    logger.propagate = False
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
