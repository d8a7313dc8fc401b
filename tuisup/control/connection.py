"""Provides Connection: one client of the control socket, from its hello to its end.

A connection reads lines, answers a hello, then runs each request as a task of its own
(a slow `stop` does not hold up a `ps`), and streams each `subscribe`. One writer sends
what the outbox holds. Whatever the client does, the host is not hurt, and what the
connection holds stays bounded:

- a line over `MAX_LINE` is answered `bad_request` and the connection is closed;
- malformed lines are answered `bad_request` (`"id": null`); too many of them close it;
- no hello within `hello_within` seconds, or anything before the hello, closes it;
- requests are not read while the outbox is full, nor while `in_flight` are running;
- a client that takes nothing for `stall` seconds is cut off;
- when it ends, every task of it has ended and its socket is closed.

Its socket is read and written through an asyncio transport, not anyio's UNIX socket
stream: cancelling a read of that stream when its peer has just gone (the usual way a
connection ends) leaves a callback that sets the result of the cancelled future, and asyncio
prints `Exception in callback ... InvalidStateError` on the host's stderr, once per client
that was killed while following a busy service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from tuisup.api import HostAPI
from tuisup.control import protocol
from tuisup.control.ops import Args, Ops, Subscribed, ViewCoder
from tuisup.control.outbox import Outbox
from tuisup.control.streams import EventStream, Feeds
from tuisup.model import ApiError

if TYPE_CHECKING:
    from tuisup.control.server import Limits

CHUNK = 64 * 1024
"""Bytes read at a time."""
SEND = 16 * 1024
"""Bytes sent at a time: a client that cannot take this much within `stall` seconds
(1.6 KB/s at the default) has stopped reading, as far as the server is concerned."""


class LineTooLong(Exception):
    """A line went past MAX_LINE bytes without its newline."""


class Lines:
    """The lines a client sends, each at most `most` bytes (without its newline)."""

    def __init__(self, reader: asyncio.StreamReader, most: int = protocol.MAX_LINE) -> None:
        self._reader = reader
        self._most = most
        self._buffer = bytearray()
        self._scanned = 0

    async def next(self) -> bytes | None:
        """The next line, without its newline; None at the end (a last unended line counts).

        Raises:
            LineTooLong: The line is over `most` bytes.
        """
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end >= 0:
                return self._cut(end, end + 1)
            if len(self._buffer) > self._most:
                raise LineTooLong
            self._scanned = len(self._buffer)
            try:
                data = await self._reader.read(CHUNK)
            except OSError:  # reset by the peer: it is gone
                data = b""
            if not data:
                return self._cut(len(self._buffer), len(self._buffer)) if self._buffer else None
            self._buffer += data

    def _cut(self, end: int, after: int) -> bytes:
        if end > self._most:
            raise LineTooLong
        line = bytes(self._buffer[:end])
        del self._buffer[:after]
        self._scanned = 0
        return line


class Connection:
    """One client: its requests, its streams, its outbox and its writer."""

    def __init__(
        self,
        api: HostAPI,
        sock: socket.socket,
        hello: dict[str, Any],
        peer_pid: int,
        limits: Limits,
        coder: ViewCoder,
        feeds: Feeds,
        detach: Callable[[Awaitable[None]], None],
    ) -> None:
        self.api = api
        self.sock = sock
        self.limits = limits
        self.outbox = Outbox(limits.outbox)
        self.ops = Ops(api, peer_pid, coder, detach)
        self.feeds = feeds
        self.done = anyio.Event()
        """Set once the connection has ended and its socket is closed."""
        self._hello = hello
        self._flushed = False
        """The writer sent everything and ended: the socket closes after a flush."""
        self._slots = anyio.Semaphore(limits.in_flight)
        self._requests = 0
        self._streams: dict[int, EventStream] = {}
        self._streams_ended = False
        """No stream may run any more (one opened late ends at once)."""
        self._settled = anyio.Event()
        self._malformed = 0
        self._reading = anyio.CancelScope()
        self._tg: TaskGroup | None = None

    async def run(self) -> None:
        """Serve the client until it leaves, is sent away, or `finish` is called."""
        try:
            reader, writer = await asyncio.open_unix_connection(sock=self.sock, limit=CHUNK)
        except BaseException:
            self.sock.close()
            self.done.set()
            raise
        # drain() waits while more than SEND bytes are unsent: see _write.
        writer.transport.set_write_buffer_limits(high=SEND)
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._write, writer)
                with self._reading:
                    await self._read(Lines(reader))
                if not self._reading.cancel_called:  # it left, or was sent away
                    self._end_streams()
                await self._settle()
                self.outbox.close()  # the writer sends what is left, then returns
        finally:
            self._end_streams()  # cut off: its streams leave their feeds too
            with anyio.CancelScope(shield=True):
                await self._close(writer)
            self.done.set()

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        """Close the socket: after what is unsent, or (a client cut off) at once."""
        if self._flushed:
            writer.close()
            with anyio.move_on_after(self.limits.stall), contextlib.suppress(Exception):
                await writer.wait_closed()
                return
        writer.transport.abort()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    def finish(self, *, streams: bool) -> None:
        """Read no more requests; answer those running, then end.

        Args:
            streams: Let streams run to the host's `host_stopped` (the host is stopping,
                and that is the last thing they have to say); else end them now.
        """
        self._reading.cancel()
        if not streams:
            self._end_streams()

    # -- reading --------------------------------------------------------------------------

    async def _read(self, lines: Lines) -> None:
        """Read the hello, then requests, until the end or a reason to close."""
        try:
            with anyio.move_on_after(self.limits.hello_within) as waited:
                line = await lines.next()
            if waited.cancelled_caught:
                within = f"{self.limits.hello_within:g}"
                self._answer(protocol.error(None, "bad_request", f"no hello within {within} s"))
                return
            if line is None or not self._said_hello(line):
                return
            while True:
                await self.outbox.room()  # not one request more for a client that reads none
                line = await lines.next()
                if line is None or not await self._request(line):
                    return
        except LineTooLong:
            message = f"request over {protocol.MAX_LINE >> 20} MiB"
            self._answer(protocol.error(None, "bad_request", message))

    def _said_hello(self, line: bytes) -> bool:
        """Answer the first line; return whether it was a hello this server speaks."""
        try:
            message = protocol.decode(line)
        except protocol.ProtocolError as exc:
            self._answer(protocol.error(None, "bad_request", f"hello first ({exc})"))
            return False
        id_ = _id(message)
        if message.get("op") != "hello":
            self._answer(protocol.error(id_, "bad_request", "hello first"))
            return False
        args = message.get("args")
        version = message.get("version", args.get("version") if isinstance(args, dict) else None)
        # An integer, and not a bool (`true == 1` in Python), as every number of a request.
        if not isinstance(version, int) or isinstance(version, bool) or version != protocol.VERSION:
            speaks = f"this host speaks version {protocol.VERSION}"
            text = f"protocol version {_shown(version)} is not served: {speaks}"
            self._answer(protocol.error(id_, "version", text))
            return False
        self._answer(protocol.ok(id_, self._hello))
        return True

    async def _request(self, line: bytes) -> bool:
        """Start answering one line; return whether to go on reading."""
        try:
            message = protocol.decode(line)
            id_ = message.get("id")
            if not isinstance(id_, int) or isinstance(id_, bool):
                raise protocol.ProtocolError("id must be an integer")
        except protocol.ProtocolError as exc:
            self._malformed += 1
            self._answer(protocol.error(None, "bad_request", str(exc)))
            return self._malformed < self.limits.malformed
        op, args = message.get("op"), message.get("args")
        if not isinstance(op, str):
            self._answer(protocol.error(id_, "bad_request", "op must be a string"))
        elif op == "hello":
            self._answer(protocol.ok(id_, self._hello))
        elif op == "unsubscribe":
            self._unsubscribe(id_, args)
        elif op == "subscribe" and id_ in self._streams:
            self._answer(protocol.error(id_, "bad_request", f"stream {id_} is open already"))
        else:
            await self._slots.acquire()
            self._requests += 1
            assert self._tg is not None
            self._tg.start_soon(self._run_request, id_, op, args)
        return True

    # -- requests and streams -------------------------------------------------------------

    async def _run_request(self, id_: int, op: str, args: object) -> None:
        try:
            try:
                result = await self.ops.call(op, args)
                if isinstance(result, Subscribed):
                    self._open_stream(id_, result)
                    return
                answer = protocol.encode(protocol.ok(id_, result))
            except ApiError as exc:
                answer = protocol.encode(protocol.error(id_, exc.code, exc.message))
            except Exception as exc:  # a bug, not the client's: say it, keep the host up
                text = f"{type(exc).__name__}: {exc}"
                answer = protocol.encode(protocol.error(id_, "internal", text))
            self.outbox.put(answer)
        finally:
            self._slots.release()
            self._requests -= 1
            self._check_settled()

    def _open_stream(self, id_: int, subscribed: Subscribed) -> None:
        """Answer a subscribe with its snapshot, then put its stream on the host's feed."""
        result = {
            "after": subscribed.subscription.after,
            "snapshot": self.ops.coder(subscribed.snapshot),
        }
        self.outbox.put(protocol.encode(protocol.ok(id_, result)))
        if self._streams_ended:  # it was asked for as the connection ends: it ends now
            return
        stream = EventStream(
            self.api, id_, subscribed, self.outbox, self._stream_ended, self.ops.coder
        )
        self._streams[id_] = stream
        self.feeds.join(stream, subscribed.subscription)

    def _stream_ended(self, stream: EventStream, error: str | None) -> None:
        """A stream ended by itself: the host stopped, or (`error`) a bug."""
        if error is not None:  # this stream ends, saying so; nothing else does
            self._answer(protocol.error(stream.id, "internal", error))
        self.feeds.leave(stream)
        if self._streams.get(stream.id) is stream:
            del self._streams[stream.id]
        self._check_settled()

    def _unsubscribe(self, id_: int, raw_args: object) -> None:
        try:
            number = Args("unsubscribe", raw_args).count("stream")
        except ApiError as exc:
            self._answer(protocol.error(id_, exc.code, exc.message))
            return
        stream = self._streams.pop(number, None) if number is not None else None
        if stream is None:
            self._answer(protocol.error(id_, "bad_request", f"unsubscribe: no stream {number}"))
            return
        self.feeds.leave(stream)  # it sends nothing more: the answer below is its last word
        self._answer(protocol.ok(id_))

    def _end_streams(self) -> None:
        self._streams_ended = True
        for stream in self._streams.values():
            self.feeds.leave(stream)
        self._streams.clear()
        self._check_settled()

    async def _settle(self) -> None:
        """Wait for the requests running and the streams still going."""
        while self._requests or self._streams:
            self._settled = anyio.Event()
            await self._settled.wait()

    def _check_settled(self) -> None:
        if not self._requests and not self._streams:
            self._settled.set()

    # -- writing --------------------------------------------------------------------------

    def _answer(self, message: dict[str, Any]) -> None:
        self.outbox.put(protocol.encode(message))

    async def _write(self, writer: asyncio.StreamWriter) -> None:
        """Send what the outbox holds; cut off a client that stops taking it."""
        while (data := await self.outbox.take(SEND)) is not None:
            try:
                if writer.is_closing():
                    raise ConnectionResetError("the client has gone")
                writer.write(data)
                if writer.transport.get_write_buffer_size() > SEND:
                    # At most SEND bytes wait unsent: if they cannot go in `stall` seconds,
                    # the client has stopped reading (its socket buffer is full). Most
                    # writes go straight to the socket: no timer for them (it costs).
                    with anyio.fail_after(self.limits.stall):
                        await writer.drain()
            except TimeoutError:  # it stopped reading: cut it off, requests and all
                assert self._tg is not None
                self._tg.cancel_scope.cancel()
                return
            except OSError:
                # It is gone (it may have sent its commands and left at once, as
                # `--no-wait` does): what it asked for is still done, its answers dropped.
                self._end_streams()
                self.outbox.discard()
                return
            if self.outbox.roomy:
                self._caught_up()
        self._flushed = True

    def _caught_up(self) -> None:
        """The client took what waited: streams that dropped lines say so now."""
        for stream in list(self._streams.values()):
            try:
                stream.caught_up()
            except Exception as exc:  # a bug (making its snapshot): this stream ends
                self._stream_ended(stream, f"{type(exc).__name__}: {exc}")


def _shown(value: object) -> str:
    """A value the client sent, in a message: as JSON, but a container only by its kind.

    A container may be nested too deeply to write back (and is of no use in the message),
    and a long string is cut.
    """
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    text = json.dumps(value)  # ASCII: no control character of any kind goes back
    return text if len(text) <= 40 else f"{text[:39]}…"


def _id(message: dict[str, Any]) -> int | None:
    id_ = message.get("id")
    return id_ if isinstance(id_, int) and not isinstance(id_, bool) else None
