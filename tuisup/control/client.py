"""Provides RemoteHost: the HostAPI of a host in another process, over its control socket.

    host = await RemoteHost.connect(".tuisup/tuisup.sock")
    host.snapshot()                # a local read of the mirror
    await host.restart("web")      # a request, answered once done
    async for batch in await host.subscribe(): ...
    await host.close()             # detach: everything keeps running

One task reads the socket. Answers wake the request that waits for them; stream lines feed
the mirror (every service's view, what `snapshot()` reads) and then the subscriptions. The
server follows every batch of events with a `status` line carrying the views that batch
changed; the batch is held until its status is in the mirror, so that a front end never sees
an event that `snapshot()` does not yet reflect. A subscription that is not read is never
allowed to hold up the socket (answers would wait behind it): past a bound it drops batches
and says how many with a `missed` event, as the host's own bus does.

Imports neither anyio nor Textual: `tuisup ps` loads asyncio and this, nothing more.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from typing import Any

from tuisup.control import protocol
from tuisup.control.mirror import HOLD, Mirror, Stream
from tuisup.control.mirror import RemoteSubscription as RemoteSubscription
from tuisup.model import (
    ApiError,
    LogBatch,
    ProcessStats,
    ServiceView,
    TableView,
    event_from_json,
)
from tuisup.model import events as ev
from tuisup.model.errors import error_from_json

READ_SIZE = 1 << 18
"""Bytes asked of the socket at a time; every complete line in them is one batch."""
LINE_MAX = 64 << 20
"""Bytes a line from the server may have (a snapshot of thousands of services, a big log read)."""
CONNECT_TIMEOUT = 5.0
"""Seconds to connect and be greeted."""


class ConnectionLost(ApiError):
    """The host closed the connection (it stopped, or died) before answering."""

    code = "connection_lost"


def _settled(future: asyncio.Future[Any]) -> None:
    """Leave nothing of a request's future for asyncio to complain of once it is dropped.

    Its exception is read here when it has one nobody awaited: the loss of the connection,
    set on it while its request was still being sent (asyncio would print `Future exception
    was never retrieved` at exit). One not done yet is cancelled: it has no reader any more.
    """
    if not future.done():
        future.cancel()
    elif not future.cancelled():
        future.exception()


class RemoteHost:
    """A host in another process, through its control socket (see the module)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._answers: dict[int, asyncio.Future[Any]] = {}
        self._streams: dict[int, Stream] = {}
        self._own: Stream | None = None
        self._mirror = Mirror()
        self._stopping = False
        self.lost: str | None = None
        """Why the connection ended, once it has."""
        self.hello: dict[str, Any] = {}
        """What the server said of itself: version, tuisup, pid, manifest, socket."""
        self._task = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(
        cls, path: str | os.PathLike[str], *, mirror: bool = True, timeout: float | None = None
    ) -> RemoteHost:
        """Connect, say hello and (with `mirror`) follow every service's view.

        Args:
            path: The host's socket.
            mirror: Keep every service's view up to date for `snapshot()` (a front end);
                without it, `snapshot()` holds what the client's subscriptions brought.
            timeout: Seconds to connect and be greeted (default: CONNECT_TIMEOUT).

        Raises:
            OSError: Nothing listens there (FileNotFoundError, ConnectionRefusedError).
            ApiError: The server refused the hello (another protocol version).
            TimeoutError: The server did not answer in time.
        """
        async with asyncio.timeout(CONNECT_TIMEOUT if timeout is None else timeout):
            reader, writer = await asyncio.open_unix_connection(os.fspath(path))
            host = cls(reader, writer)
            try:
                host.hello = await host._ask(0, protocol.hello())
                if mirror:
                    own = host._own = host._open_stream(lines=False, services=None, mirror=True)
                    await host._ask(own.id, host._subscribe_request(own, None))
            except BaseException:
                await host.close()
                raise
        return host

    # -- the Protocol's properties and reads ------------------------------------------------

    @property
    def manifest_path(self) -> str:
        """The manifest the host runs (absolute), as its hello said."""
        return str(self.hello.get("manifest", ""))

    @property
    def remote(self) -> bool:
        """True: quitting a console on this host detaches."""
        return True

    @property
    def stopping(self) -> bool:
        """Whether the host's shutdown has begun, as far as this client has heard."""
        return self._stopping

    @property
    def pid(self) -> int | None:
        """The host's process id."""
        pid = self.hello.get("pid")
        return pid if isinstance(pid, int) else None

    def snapshot(self) -> dict[str, ServiceView]:
        """Every service's view, from the mirror (no round trip)."""
        return dict(self._mirror.views)

    async def subscribe(
        self, *, lines: bool = False, services: list[str] | None = None
    ) -> RemoteSubscription:
        """The snapshot, then every event after it.

        Without `lines` or `services`, it is served from the mirror's own stream.

        Args:
            lines: Carry the lines an `output` event announces in the event itself.
            services: Only events about these services (and host-wide ones).
        """
        own = self._own
        if own is not None and not lines and services is None:
            subscription = RemoteSubscription(self.snapshot(), own.delivered)
            own.listeners.add(subscription)
            if self.lost is not None:
                subscription.end()
            return subscription
        stream = self._open_stream(lines=lines, services=services, mirror=False)
        dedicated: RemoteSubscription = await self._ask(
            stream.id, self._subscribe_request(stream, services)
        )
        return dedicated

    async def views(
        self, services: list[str] | None = None, *, spec: bool = True
    ) -> dict[str, ServiceView]:
        """Every service's view (or those named) as the host has it now: a round trip.

        Args:
            services: Only these.
            spec: Ask for the manifest tables too; without them, a view gets the table the
                mirror has of its service (a bare one if it has none).

        Raises:
            UnknownService: One of `services` is not a service.
        """
        args: dict[str, Any] = {"services": services} if services is not None else {}
        if not spec:
            args["spec"] = False
        result = await self.request("snapshot", **args)
        views = [self._mirror.read(data) for data in result["services"]]
        return {view.name: view for view in views}

    async def logs(
        self, name: str | None = None, since: int = 0, limit: int | None = None
    ) -> list[LogBatch]:
        """The kept lines numbered after `since`, of one service or of all merged.

        Args:
            name: One service, or None for every service's lines merged.
            since: Only lines numbered after this.
            limit: Only the last `limit` lines.
        """
        args: dict[str, Any] = {"name": name, "since": since}
        if limit is not None:
            args["limit"] = limit
        result = await self.request("logs", **args)
        return [LogBatch.from_json(batch) for batch in result["batches"]]

    async def processes(self) -> ProcessStats:
        """Every running service's OS process tree, with CPU and memory."""
        return ProcessStats.from_json(await self.request("processes"))

    async def affected(self, verb: str, name: str) -> list[str]:
        """The other services that `verb` on `name` would move now."""
        result = await self.request("affected", verb=verb, name=name)
        return [str(n) for n in result["services"]]

    async def tables(self) -> dict[str, TableView]:
        """Every replicated table now, in manifest order."""
        result = await self.request("tables")
        return {str(name): TableView.from_json(t) for name, t in result["tables"].items()}

    # -- commands ---------------------------------------------------------------------------

    async def command(self, verb: str, name: str) -> list[str]:
        """Start, stop, restart or kill a service; answered once done.

        Returns:
            The other services it moved (dependencies started, dependents stopped first).
        """
        result = await self.request(verb, name=name)
        return [str(n) for n in result.get("moved", ())]

    async def start(self, name: str) -> None:
        """Start a service, and first the dependencies it needs that are not up."""
        await self.command("start", name)

    async def stop(self, name: str) -> None:
        """Stop a service, and first the services that depend on it."""
        await self.command("stop", name)

    async def restart(self, name: str) -> None:
        """Restart a service (not counted against its restart budget)."""
        await self.command("restart", name)

    async def kill(self, name: str) -> None:
        """SIGKILL a service's process group now; its restart policy then applies."""
        await self.command("kill", name)

    async def scale(self, name: str, count: int) -> None:
        """Run `count` replicas of a replicated table; the others keep running."""
        await self.request("scale", name=name, count=count)

    async def toggle_watch(self, name: str) -> bool | None:
        """Pause or resume restarting a service for its changed files; the new state."""
        result = await self.request("toggle_watch", name=name)
        watching = result.get("watching")
        return watching if isinstance(watching, bool) else None

    async def reload(self) -> bool:
        """Read the manifest again and apply what changed; whether it was applied."""
        return bool((await self.reload_result())["applied"])

    async def reload_result(self) -> dict[str, Any]:
        """`reload`, with all the server said: `applied`, and `summary` or `error` if given."""
        result: dict[str, Any] = await self.request("reload")
        return result

    async def reopen_logs(self) -> None:
        """Have the host open every log file's path again at its next line."""
        await self.request("reopen_logs")

    async def shutdown(self, reason: str = "shutdown") -> None:
        """Stop every service and the host; return once it has stopped."""
        self._stopping = True
        try:
            await self.request("shutdown", reason=reason)
        except ConnectionLost:
            pass  # it closed as it stopped: what was asked is done

    async def close(self) -> None:
        """Detach: close the connection (everything on the host keeps running)."""
        self._lose("closed")
        self._task.cancel()
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except OSError:
            pass  # the other end was gone already

    async def send(self, op: str, **args: Any) -> None:
        """Send a request without waiting for its answer: the host does it even once we left."""
        if self.lost is not None:
            raise ConnectionLost(f"not connected to tuisup: {self.lost}")
        self._writer.write(protocol.encode(protocol.request(next(self._ids), op, **args)))
        await self._writer.drain()

    # -- requests ---------------------------------------------------------------------------

    async def request(self, op: str, **args: Any) -> Any:
        """Any operation of the protocol; its answer's `result`, as JSON.

        Raises:
            ApiError: The host refused it (the class its code names).
            ConnectionLost: The connection ended before the answer.
        """
        id_ = next(self._ids)
        return await self._ask(id_, protocol.request(id_, op, **args))

    async def _ask(self, id_: int, message: dict[str, Any]) -> Any:
        """Send a request and wait for its answer (what an error answer names is raised)."""
        if self.lost is not None:
            raise ConnectionLost(f"not connected to tuisup: {self.lost}")
        future = asyncio.get_running_loop().create_future()
        self._answers[id_] = future
        try:
            self._writer.write(protocol.encode(message))
            await self._writer.drain()
            return await future
        except OSError as exc:
            self._lose(f"{type(exc).__name__}: {exc}")
            raise ConnectionLost(f"the connection to tuisup was lost: {self.lost}") from None
        finally:
            self._answers.pop(id_, None)
            _settled(future)
            if id_ in self._streams and not self._streams[id_].open:
                del self._streams[id_]  # refused, or cancelled before its answer

    def _open_stream(self, *, lines: bool, services: list[str] | None, mirror: bool) -> Stream:
        """A stream, known before its request goes: its lines may follow its answer at once."""
        stream = Stream(next(self._ids), lines=lines, filtered=services is not None, mirror=mirror)
        self._streams[stream.id] = stream
        return stream

    @staticmethod
    def _subscribe_request(stream: Stream, services: list[str] | None) -> dict[str, Any]:
        args: dict[str, Any] = {"lines": stream.lines, "views": True}
        if services is not None:
            args["services"] = services
        return protocol.request(stream.id, "subscribe", **args)

    # -- reading ----------------------------------------------------------------------------

    async def _read(self) -> None:
        """Read lines until the connection ends; each read's complete lines are one batch."""
        partial: list[bytes] = []  # a line's start, while it is longer than a read
        size = 0
        why = "the host closed the connection"
        try:
            while chunk := await self._reader.read(READ_SIZE):
                if b"\n" not in chunk:
                    partial.append(chunk)
                    size += len(chunk)
                    if size > LINE_MAX:
                        raise protocol.ProtocolError(f"a line over {LINE_MAX} bytes")
                    continue
                if partial:
                    chunk = b"".join([*partial, chunk])
                *lines, rest = chunk.split(b"\n")
                partial, size = ([rest], len(rest)) if rest else ([], 0)
                touched: dict[int, Stream] = {}
                for line in lines:
                    self._line(line, touched)
                for stream in touched.values():
                    self._settle(stream)
        except (OSError, protocol.ProtocolError) as exc:
            why = f"{type(exc).__name__}: {exc}"
        self._lose(why)

    def _line(self, line: bytes, touched: dict[int, Stream]) -> None:
        message = protocol.decode(line, LINE_MAX)  # answers are not held to MAX_LINE
        id_ = message.get("id")
        if "stream" in message:
            stream = self._streams.get(id_) if isinstance(id_, int) else None
            if stream is not None and stream.open:
                self._stream_line(stream, message["stream"], len(line))
                touched[stream.id] = stream
            return
        future = self._answers.get(id_) if isinstance(id_, int) else None
        if future is None or future.done():
            return  # an answer nobody waits for any more (or to a line it could not read)
        if not message.get("ok"):
            error = message.get("error") or {}
            code, text = str(error.get("code", "error")), str(error.get("message", ""))
            future.set_exception(error_from_json(code, text))
            return
        result = message.get("result")
        stream = self._streams.get(id_)  # type: ignore[arg-type]
        if stream is not None and not stream.open:
            result = self._opened(stream, result if isinstance(result, dict) else {})
        future.set_result(result)

    def _opened(self, stream: Stream, result: dict[str, Any]) -> RemoteSubscription | None:
        """A stream's answer: its snapshot goes into the mirror; its reader is made."""
        stream.open = True
        after = int(result.get("after", 0))
        stream.last_seq = stream.delivered = after
        views = [self._mirror.read(data) for data in result.get("snapshot", ())]
        self._mirror.take(views, after, whole=not stream.filtered)
        if stream.mirror:
            return None
        subscription = RemoteSubscription({view.name: view for view in views}, after)
        stream.listeners.add(subscription)
        return subscription

    def _stream_line(self, stream: Stream, data: dict[str, Any], size: int) -> None:
        kind = data.get("event")
        if kind == "status" or kind == "snapshot":
            seq = data.get("seq")
            if isinstance(seq, int) and seq > stream.last_seq:
                stream.last_seq = seq
            views = [self._mirror.read(view) for view in data.get("services", ())]
            whole = kind == "snapshot" and not stream.filtered
            self._mirror.take(views, stream.last_seq, whole=whole)
            stream.flush()
            return
        try:
            event = event_from_json(data)
        except ValueError:
            return  # a kind of event a newer host sends: nothing here uses it
        stream.last_seq = max(stream.last_seq, event.seq)
        if isinstance(event, ev.HostStopping):
            self._stopping = True
        elif isinstance(event, ev.ManifestReloaded | ev.Scaled):
            self._mirror.forget(event.removed, event.seq)
        if not stream.mirror and not stream.listeners:
            return  # a subscription nobody reads any more: dropped at the end of the read
        stream.hold(event, size)

    def _settle(self, stream: Stream) -> None:
        """At the end of a read: hand over what needs no status, else wait a little for it."""
        if not stream.mirror and not stream.listeners:
            self._drop(stream)
        elif not stream.wants_status:
            stream.flush()
        elif stream.timer is None:
            loop = asyncio.get_running_loop()
            stream.timer = loop.call_later(HOLD, stream.flush)

    def _drop(self, stream: Stream) -> None:
        """Nobody reads this stream any more: ask the server to end it."""
        self._streams.pop(stream.id, None)
        if self.lost is None:
            message = protocol.request(next(self._ids), "unsubscribe", stream=stream.id)
            self._writer.write(protocol.encode(message))

    def _lose(self, why: str) -> None:
        """The connection ended: waiting requests fail, subscriptions end."""
        if self.lost is not None:
            return
        self.lost = why
        for future in self._answers.values():
            if not future.done():
                future.set_exception(ConnectionLost(f"the connection to tuisup was lost: {why}"))
        for stream in self._streams.values():
            stream.flush()
            for subscription in list(stream.listeners):
                subscription.end()
