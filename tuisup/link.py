"""Provides a service's link to its host: the events it observes and the commands it gives.

`Context.events`, `Context.restart` and the rest (`tuisup.service`) go through a `HostLink`:
a HostAPI (`tuisup.api`) and the event loop it lives on. A service inside tuisup (`thread`,
`async`) is linked to the Host itself, on tuisup's own loop. A service in a child process
(`process`, `async-process`) is linked through the host's control socket, whose path the
host gives every service's process as `TUISUP_SOCKET`: a `RemoteHost` on an event loop in
a thread of the child's own, made at the first use, so that a service that observes nothing
pays nothing. The same Protocol either way, so the same events, views and errors.

Why the socket, not the child's status pipe: the socket already carries typed events, a
snapshot first, `missed` for a reader behind, and every command with its errors, to any
number of clients, each in its own connection; a second protocol on the pipe would repeat
all of that for one reader. It costs one connection per child that uses the link.

A call may come from any thread or loop. The blocking forms hand the work to the link's
loop and wait for it; from that loop's own thread (an `async` service inside tuisup) they
would wait for ever, and raise instead. The async forms await it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from tuisup.backlog import Backlog, selectable
from tuisup.control.paths import SOCKET_ENV
from tuisup.model.errors import ApiError
from tuisup.model.events import Event, Output
from tuisup.service import _resolve
from tuisup.spec import Listen

if TYPE_CHECKING:
    from tuisup.api import HostAPI, Subscription
    from tuisup.service import CancellationToken

T = TypeVar("T")


class HostUnreachable(ApiError):
    """A service in a child process cannot reach its host (no socket, or nobody on it)."""

    code = "host_unreachable"


class SelfControl(ApiError):
    """A service asked to start, stop, restart or kill itself (which would wait for itself)."""

    code = "self_control"


class HostLink:
    """A host (as a HostAPI) and the loop it lives on: calls to it from any thread or loop."""

    def __init__(
        self,
        host: HostAPI,
        loop: asyncio.AbstractEventLoop,
        thread: threading.Thread | None = None,
    ) -> None:
        self.host = host
        self.loop = loop
        self._thread = thread
        """The thread running `loop`, when the link made it (in a child)."""

    @classmethod
    def connect(cls, path: str) -> HostLink:
        """Connect to the host's control socket from a loop in a thread of our own.

        Raises:
            HostUnreachable: Nothing answers on `path`.
        """
        from tuisup.control.client import RemoteHost

        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=_serve, args=(loop,), name="tuisup:link", daemon=True)
        thread.start()
        connecting = asyncio.run_coroutine_threadsafe(RemoteHost.connect(path), loop)
        try:
            return cls(connecting.result(), loop, thread)
        except (OSError, TimeoutError, ApiError) as exc:
            loop.call_soon_threadsafe(loop.stop)
            raise HostUnreachable(f"cannot reach the host at {path}: {exc}") from None

    @classmethod
    def from_environment(cls) -> HostLink:
        """The link of a service's child process, through `TUISUP_SOCKET`.

        Raises:
            HostUnreachable: The variable is not set, or nothing answers there.
        """
        path = os.environ.get(SOCKET_ENV)
        if not path:
            raise HostUnreachable(
                f"{SOCKET_ENV} is not set: this process was not started by a tuisup host"
            )
        return cls.connect(path)

    def close(self, timeout: float = 1.0) -> None:
        """Let go of a host reached through its socket, and end the link's loop and thread.

        A link to the Host in the same process has nothing to let go of.
        """
        if self._thread is None:
            return
        closing = asyncio.run_coroutine_threadsafe(self.host.close(), self.loop)
        with contextlib.suppress(Exception):  # the host is gone already: nothing to let go
            closing.result(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)

    def call(self, work: Callable[[HostAPI], Coroutine[Any, Any, T]]) -> T:
        """Run `work(host)` on the link's loop and wait for its result (a thread's form).

        Raises:
            RuntimeError: Called in the link's loop itself, which it would block for ever.
        """
        if _running_loop() is self.loop:
            raise RuntimeError(
                "this call blocks until tuisup's loop does it, and it runs in that loop: "
                "in a coroutine, await its _async form (or iterate events with `async for`)"
            )
        return asyncio.run_coroutine_threadsafe(work(self.host), self.loop).result()

    async def call_async(self, work: Callable[[HostAPI], Coroutine[Any, Any, T]]) -> T:
        """Await `work(host)` on the link's loop (a coroutine's form)."""
        if _running_loop() is self.loop:
            return await work(self.host)
        future = asyncio.run_coroutine_threadsafe(work(self.host), self.loop)
        return await asyncio.wrap_future(future)


async def command(host: HostAPI, verb: str, name: str, owner: str) -> None:
    """`verb` a service for the service `owner`, which may not move itself.

    Raises:
        SelfControl: `name` is `owner`, or stopping `name` would stop `owner` first (it
            depends on it): the command would wait for its own caller to end.
        UnknownService: No such service.
    """
    if name == owner:
        raise SelfControl(
            f"{owner} cannot {verb} itself: to end, return from its run "
            "(its restart policy then applies)"
        )
    mine = host.snapshot().get(owner)
    if mine is not None and name in (mine.group, mine.replica is not None and mine.declared):
        what = "its group" if name == mine.group else "its replicated service"
        raise SelfControl(f"{owner} cannot {verb} {name}, {what}, which it is part of")
    if verb == "stop" and owner in await host.affected(verb, name):
        raise SelfControl(f"stopping {name} would stop {owner} itself first (it depends on it)")
    await getattr(host, verb)(name)


def wanted(services: list[str] | None, kinds: list[str] | None) -> Listen:
    """What a feed selects, checked: the same selection as a listener's `listen`.

    Raises:
        ValueError: An unknown kind, or a kind that always comes.
    """
    known = selectable()
    for kind in kinds or ():
        if kind not in known:
            raise ValueError(f"unknown event kind {kind!r}: expected one of {', '.join(known)}")
    return Listen(
        kinds=None if kinds is None else tuple(kinds),
        services=None if services is None else tuple(services),
    )


class EventFeed:
    """The host's events for one service: `for` in a thread, `async for` in a coroutine.

    It yields a `snapshot` of the selected services first, then every event selected, in
    order, and ends when the service's token is set (at once, what is queued unread), or
    once the host has stopped and what came before is read. It never holds the host up: a
    reader more than `buffer` events behind loses those queued, and reads a `missed` event
    with how many, then a snapshot of where things stood then, then what came after.

    Made by `Context.events`; one reader at a time.
    """

    def __init__(
        self,
        link: Callable[[], HostLink],
        link_async: Callable[[], Awaitable[HostLink]],
        owner: str,
        token: CancellationToken,
        selection: Listen,
        buffer: int,
    ) -> None:
        self._link = link
        self._link_async = link_async
        self._owner = owner
        self._selection = selection
        self._buffer = buffer
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._backlog: Backlog | None = None
        """What it selected and has not read yet, once it follows the host."""
        self._over = False
        """The host's stream ended (it stopped, or the connection went): end once read."""
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        """The task that follows the host for a reader elsewhere (a thread, another loop)."""
        self._batches: AsyncIterator[list[Event]] | None = None
        """The host's batches, for a reader on the link's loop that reads them itself."""
        self._reader: asyncio.Task[Any] | None = None
        """That reader, while it waits for a batch (the token cancels the wait)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._token = token
        token.on_cancel(self.close)

    def __repr__(self) -> str:
        return f"EventFeed({self._owner!r}, {self._selection!r})"

    # -- the reader's side ----------------------------------------------------------------

    def __iter__(self) -> EventFeed:
        return self

    def __next__(self) -> Event:
        if self._backlog is None and not self._closed:
            self._link().call(self._open)
        with self._changed:
            while True:
                event = self._next()
                if event is not None:
                    return event
                if self._closed or self._over:
                    raise StopIteration
                self._changed.wait()

    def __aiter__(self) -> EventFeed:
        return self

    async def __anext__(self) -> Event:
        if self._backlog is None and not self._closed:
            link = await self._link_async()  # a child connects at its first use
            direct = _running_loop() is link.loop
            await link.call_async(partial(self._open, direct=direct))
        while True:
            with self._lock:
                event = self._next()
                if event is not None:
                    return event
                if self._closed or self._over:
                    raise StopAsyncIteration
                if self._batches is not None:
                    self._reader = asyncio.current_task()
                else:
                    loop = asyncio.get_running_loop()
                    waiter = (loop, loop.create_future())
                    self._waiters.append(waiter)
            if self._batches is not None:
                await self._read_directly()
                continue
            try:
                await waiter[1]
            finally:
                with self._lock:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)

    async def _read_directly(self) -> None:
        """Take the host's next batch in the reader's own task (it runs on the link's loop).

        The bus wakes the reader itself, with no task of the feed's between them (which
        would hand each event on one turn of the loop later). The token ends the wait by
        cancelling it (`close`); that cancellation is taken back here, not the reader's.
        """
        assert self._batches is not None
        reader = asyncio.current_task()
        try:
            batch = await anext(self._batches)
        except StopAsyncIteration:
            with self._lock:
                self._over = True
            return
        except asyncio.CancelledError:
            if self._closed and reader is not None and reader.uncancel() == 0:
                return  # ours: closed, the loop in __anext__ ends
            raise
        finally:
            with self._lock:
                self._reader = None
        self._take(batch)

    def close(self) -> None:
        """End the feed now: the reader's loop ends, and the host is followed no more."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._backlog is not None:
                self._backlog.clear()
            self._wake()
            task, loop = self._task or self._reader, self._loop
        self._token.remove_on_cancel(self.close)
        if task is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)

    @property
    def closed(self) -> bool:
        """Whether it has ended by `close` (or the service's token)."""
        return self._closed

    def __enter__(self) -> EventFeed:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    async def __aenter__(self) -> EventFeed:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.close()

    def _next(self) -> Event | None:
        """The next event to read, if one is there (the lock held)."""
        if self._closed or self._backlog is None:
            return None
        return self._backlog.next()

    # -- the host's side (on the link's loop) ---------------------------------------------

    async def _open(self, host: HostAPI, *, direct: bool = False) -> None:
        """Check the selection, subscribe, and follow the host in a task of the link's loop.

        `direct`: the reader is a task of the link's loop, and reads the subscription itself.

        Raises:
            UnknownService: The selection names a service the host does not have.
        """
        from tuisup.model.errors import UnknownService

        known = host.snapshot()
        declared = {view.declared for view in known.values()}
        for name in self._selection.services or ():
            if name not in known and name not in declared:
                raise UnknownService.named(name, sorted({*known, *declared}))
        subscription = await host.subscribe(lines=self._selection.wants(Output.kind, None))
        with self._lock:
            if self._closed or self._backlog is not None:
                return
            self._backlog = Backlog(
                self._owner,
                self._selection,
                self._buffer,
                host.snapshot,
                subscription.snapshot,
                subscription.after,
            )
            self._loop = asyncio.get_running_loop()
            if direct:
                self._batches = aiter(subscription)
            else:
                self._task = self._loop.create_task(self._follow(subscription))
            self._wake()

    async def _follow(self, subscription: Subscription) -> None:
        try:
            async for batch in subscription:
                self._take(batch)
        finally:
            with self._lock:
                self._over = True
                self._wake()

    def _take(self, batch: list[Event]) -> None:
        """Queue what the service asked for of `batch` (the backlog bounds it)."""
        with self._lock:
            if self._closed or self._backlog is None:
                return
            self._backlog.take(batch)
            self._backlog.bound()
            self._wake()

    def _wake(self) -> None:
        """Wake the reader, blocked in a thread or awaiting in a loop (the lock held)."""
        self._changed.notify_all()
        here = _running_loop()
        for loop, future in self._waiters:
            if loop is here:
                _resolve(future)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, future)
        self._waiters.clear()


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    """Run a link's loop until it is stopped, then cancel and finish what is left on it."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    finally:
        loop.close()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
