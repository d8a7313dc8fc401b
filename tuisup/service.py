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

    from tuisup.api import HostAPI
    from tuisup.link import EventFeed, HostLink
    from tuisup.model import ServiceView


class CancellationToken:
    """Tells a service that it has been asked to stop. Safe to use from any thread or loop."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._callbacks: list[Callable[[], None]] = []

    @property
    def is_cancellation_requested(self) -> bool:
        """Whether the service has been asked to stop."""
        return self._event.is_set()

    def cancel(self) -> None:
        """Ask the service to stop (tuisup calls this; a service may too, to end itself)."""
        with self._lock:
            self._event.set()
            waiters, self._waiters = self._waiters, []
            callbacks, self._callbacks = self._callbacks, []
        for loop, future in waiters:
            loop.call_soon_threadsafe(_resolve, future)
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Call `callback` once cancellation is requested (at once if it has been).

        It runs in the thread that cancels: it must be quick and thread-safe.
        """
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def remove_on_cancel(self, callback: Callable[[], None]) -> None:
        """Forget a callback given to `on_cancel` (one no longer needed)."""
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

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
        self,
        name: str,
        token: CancellationToken | None = None,
        cwd: Path | None = None,
        link: HostLink | None = None,
    ) -> None:
        self.name = name
        """The service's name in the manifest."""
        self.cwd = cwd if cwd is not None else Path.cwd()
        """The service's `cwd` (for in-process services, not the process's working directory)."""
        self.log = logging.getLogger(f"tuisup.service.{name}")
        """A logger whose records land in this service's log."""
        self._token = token if token is not None else CancellationToken()
        self._asked = False
        self._host_link = link
        """Its host (in-process); None: reached through `TUISUP_SOCKET` at the first use."""
        self._link_lock = threading.Lock()
        self._feeds: list[EventFeed] = []

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

    # -- observing and moving the other services (`tuisup.link`) ----------------------------

    def events(
        self,
        services: list[str] | None = None,
        kinds: list[str] | None = None,
        *,
        buffer: int = 1000,
    ) -> EventFeed:
        """The host's events: `for ev in ctx.events()` in a thread, `async for` in a coroutine.

        First a `snapshot` of the selected services (`ev.services`, their views), then
        every selected event as it happens (`ev.kind`, `ev.service`, `ev.state`,
        `ev.health`, `ev.exit_code`, ... : the fields of `--json`). It ends when this
        service is asked to stop (so asking for events is asking for the token), or after
        the host's `host_stopped`. A reader more than `buffer` events behind gets a
        `missed` event with how many it lost, then a fresh snapshot.

        Args:
            services: Only events about these services (and about the host); None: all.
            kinds: Only these kinds (`state`, `health`, `restart_scheduled`, `output`,
                ...); None: all. `snapshot` and `missed` always come.
            buffer: Events kept for a reader behind before they are dropped (`missed`).

        Raises:
            ValueError: An unknown kind (at once).
            UnknownService: An unknown service (at the first read).
            HostUnreachable: In a child process, the host cannot be reached (first read).
        """
        from tuisup.link import EventFeed, wanted

        self._asked = True
        selection = wanted(services, kinds)
        feed = EventFeed(self._link, self._link_async, self.name, self._token, selection, buffer)
        with self._link_lock:
            self._feeds = [f for f in self._feeds if not f.closed]
            self._feeds.append(feed)
        return feed

    def snapshot(self) -> dict[str, ServiceView]:
        """Every service's view now (state, health, pid, restarts, ...), by name."""
        return self._link().call(_views)

    async def snapshot_async(self) -> dict[str, ServiceView]:
        """`snapshot`, awaited."""
        return await (await self._link_async()).call_async(_views)

    def start(self, name: str) -> None:
        """Start a service (its dependencies first), as the console and `tuisup start` do.

        Like every command here it waits until done, and raises `SelfControl` for this
        service itself, `UnknownService` for a name the host does not have.
        """
        self._command("start", name)

    async def start_async(self, name: str) -> None:
        """`start`, awaited."""
        await self._command_async("start", name)

    def stop(self, name: str) -> None:
        """Stop a service (its dependents first); `SelfControl` if this one depends on it."""
        self._command("stop", name)

    async def stop_async(self, name: str) -> None:
        """`stop`, awaited."""
        await self._command_async("stop", name)

    def restart(self, name: str) -> None:
        """Restart a service (not counted against its restart budget)."""
        self._command("restart", name)

    async def restart_async(self, name: str) -> None:
        """`restart`, awaited."""
        await self._command_async("restart", name)

    def kill(self, name: str) -> None:
        """SIGKILL a service's process group (a thread or task: end it); its policy applies."""
        self._command("kill", name)

    async def kill_async(self, name: str) -> None:
        """`kill`, awaited."""
        await self._command_async("kill", name)

    def _command(self, verb: str, name: str) -> None:
        from tuisup.link import command

        self._link().call(lambda host: command(host, verb, name, self.name))

    async def _command_async(self, verb: str, name: str) -> None:
        from tuisup.link import command

        link = await self._link_async()
        await link.call_async(lambda host: command(host, verb, name, self.name))

    def _link(self) -> HostLink:
        """The link to the host: given in-process, made at the first use in a child."""
        with self._link_lock:
            if self._host_link is None:
                from tuisup.link import HostLink

                self._host_link = _child_link(HostLink)
            return self._host_link

    async def _link_async(self) -> HostLink:
        if self._host_link is not None:
            return self._host_link
        import asyncio

        return await asyncio.to_thread(self._link)  # a child connects: not on its loop

    def _end_feeds(self) -> None:
        """End this run's event feeds (tuisup calls it when the run has ended)."""
        with self._link_lock:
            feeds, self._feeds = self._feeds, []
        for feed in feeds:
            feed.close()


_CHILD_LINK: list[HostLink] = []
"""A child process's one link to its host, once made (shared by its contexts)."""
_CHILD_LINK_LOCK = threading.Lock()


def _child_link(cls: type[HostLink]) -> HostLink:
    with _CHILD_LINK_LOCK:
        if not _CHILD_LINK:
            _CHILD_LINK.append(cls.from_environment())
        return _CHILD_LINK[0]


def close_child_link() -> None:
    """Let go of the host, if this child process reached it (its run has ended)."""
    with _CHILD_LINK_LOCK:
        links = list(_CHILD_LINK)
        _CHILD_LINK.clear()
    for link in links:
        link.close()


async def _views(host: HostAPI) -> dict[str, ServiceView]:
    return host.snapshot()


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
