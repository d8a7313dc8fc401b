"""Provides what a Python service is written against: Service, Context, CancellationToken.

A service is a callable `run(ctx)` (or `run()`), sync or async, or a `Service` subclass
with `run` or `run_async`. A service that asks for its cancellation token is stopped
through it: a thread polls `token.is_cancellation_requested` or blocks in
`token.wait(timeout)`, a coroutine awaits `token.wait_async(timeout)`. One that never asks
is stopped the way plain Python code is (see `Context.cooperative`).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Imported where used: a child running sync code starts 40 ms sooner without asyncio.
    import asyncio


class CancellationToken:
    """Tells a service that it has been asked to stop. Safe to use from any thread or loop."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def is_cancellation_requested(self) -> bool:
        """Whether the service has been asked to stop."""
        return self._event.is_set()

    def cancel(self) -> None:
        """Ask the service to stop (tuisup calls this; a service may too, to end itself)."""
        with self._lock:
            self._event.set()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            loop.call_soon_threadsafe(_resolve, future)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until cancellation is requested or `timeout` passes.

        Returns:
            True if cancellation was requested, False on timeout. A thread's loop reads
            `while not ctx.token.wait(1.0): ...`.
        """
        return self._event.wait(timeout)

    async def wait_async(self, timeout: float | None = None) -> bool:
        """Await cancellation, or `timeout` seconds; the awaitable form of `wait`."""
        import asyncio

        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._event.is_set():
                return True
            self._waiters.append((loop, future))
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return False
        finally:
            with self._lock:
                if (loop, future) in self._waiters:
                    self._waiters.remove((loop, future))
        return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Context:
    """What tuisup hands a running service."""

    def __init__(
        self, name: str, token: CancellationToken | None = None, cwd: Path | None = None
    ) -> None:
        self.name = name
        """The service's name in the manifest."""
        self.cwd = cwd if cwd is not None else Path.cwd()
        """The service's `cwd` (for in-process services, not the process's working directory)."""
        self.log = logging.getLogger(f"tuisup.service.{name}")
        """A logger whose records land in this service's log."""
        self._token = token if token is not None else CancellationToken()
        self._asked = False

    def __repr__(self) -> str:
        return f"Context(name={self.name!r}, cwd={str(self.cwd)!r})"

    @property
    def token(self) -> CancellationToken:
        """Set when the service is asked to stop; asking for it makes the service cooperative."""
        self._asked = True
        return self._token

    @property
    def cooperative(self) -> bool:
        """Whether the service has asked for its token (`token`, `cancelled`, `sleep`, ...).

        A cooperative service is stopped through its token and given `stop_timeout` to
        end. One that never asked cannot notice the token, so it is stopped at once the
        way plain Python code is: a coroutine is cancelled, a thread gets
        KeyboardInterrupt, a child process gets Python's default for `stop_signal`.
        Read when the stop comes, so a service may ask late.
        """
        return self._asked

    @property
    def cancelled(self) -> bool:
        """Shorthand for `token.is_cancellation_requested`."""
        return self.token.is_cancellation_requested

    def sleep(self, seconds: float) -> bool:
        """Sleep in a thread, waking early on cancellation; return True if cancelled."""
        return self.token.wait(seconds)

    async def sleep_async(self, seconds: float) -> bool:
        """Sleep in a coroutine, waking early on cancellation; return True if cancelled."""
        return await self.token.wait_async(seconds)


class Service:
    """Base class for a service written as a class: override `run` or `run_async`.

    `self.ctx`, `self.cancellation_token` and `self.log` are ready in `__init__` already.
    """

    ctx: Context
    log: logging.Logger

    def _bind(self, ctx: Context) -> None:
        self.ctx = ctx
        self.log = ctx.log

    @property
    def cancellation_token(self) -> CancellationToken:
        """`self.ctx.token`: reading it makes the service cooperative (`Context.cooperative`)."""
        return self.ctx.token

    def run(self) -> None:
        """The service's body, run in a thread (or a child process's main thread)."""
        raise NotImplementedError(f"{type(self).__name__} defines neither run nor run_async")

    async def run_async(self) -> None:
        """The service's body as a coroutine."""
        raise NotImplementedError(f"{type(self).__name__} defines neither run nor run_async")


class TargetError(Exception):
    """A target could not be loaded: bad module, missing attribute, not callable."""


@dataclass(frozen=True, slots=True)
class Target:
    """A loaded `module:attribute`, and whether calling it gives a coroutine."""

    spec: str
    obj: Any
    is_async: bool

    def bind(self, ctx: Context) -> Callable[[], Any]:
        """Return a no-argument callable that runs the service with `ctx`.

        Raises:
            TargetError: A `Service` subclass's `__init__` raised; the cause is its error.
        """
        obj = self.obj
        if isinstance(obj, type) and issubclass(obj, Service):
            instance = obj.__new__(obj)
            instance._bind(ctx)
            try:
                instance.__init__()  # type: ignore[misc]
            except (Exception, SystemExit) as exc:
                raise TargetError(f"{obj.__name__}() raised {_describe(exc)}") from exc
            return instance.run_async if self.is_async else instance.run
        if _wants_argument(obj):
            return lambda: obj(ctx)
        return obj  # type: ignore[no-any-return]


_SYS_PATH = threading.Lock()
"""Held while `load_target` puts folders on sys.path: each goes there once."""


def load_target(spec: str, paths: list[Path]) -> Target:
    """Import `module:attribute` with `paths` importable.

    Raises:
        TargetError: With a one-line reason; the cause carries the traceback.
    """
    module_name, _, attribute = spec.partition(":")
    with _SYS_PATH:  # targets load in worker threads, several at once
        for path in reversed(paths):
            if str(path) not in sys.path:
                sys.path.insert(0, str(path))
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # a module that exits while imported cannot start
        raise TargetError(f"cannot import {module_name}: {_describe(exc)}") from exc
    obj: Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise TargetError(f"module {module_name} has no attribute {attribute}") from exc
    if isinstance(obj, type) and issubclass(obj, Service):
        has_async = obj.run_async is not Service.run_async
        if not has_async and obj.run is Service.run:
            raise TargetError(f"{spec}: a Service subclass must define run or run_async")
        return Target(spec, obj, has_async)
    if not callable(obj):
        raise TargetError(f"{spec} is not callable (it is {type(obj).__name__})")
    return Target(spec, obj, inspect.iscoroutinefunction(obj))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"SystemExit({exc.code!r}) while importing it"
    return f"{type(exc).__name__}: {exc}"


def _wants_argument(obj: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in parameters
    )


_PACKAGE = str(Path(__file__).resolve().parent)


def format_crash(exc: BaseException) -> str:
    """Return the traceback of a service's exception, without tuisup's own frames on top."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))
