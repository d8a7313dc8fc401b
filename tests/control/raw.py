"""A raw client of the control socket for the server's tests: JSON lines on a real socket.

It speaks the protocol by hand (not through `tuisup.control.client`), keeps every byte the
server sent (`received`), and sorts what it reads into answers (by id) and stream lines.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import SocketStream

from tuisup.control.paths import SocketPath
from tuisup.control.server import ControlServer, Limits
from tuisup.engine import Host
from tuisup.spec import Manifest

Message = dict[str, Any]


class Closed(Exception):
    """The server closed the connection."""


class Raw:
    """One connection, read line by line."""

    def __init__(self, stream: SocketStream) -> None:
        self.stream = stream
        self.received = bytearray()
        """Every byte the server sent (unless `keep` is False)."""
        self.keep = True
        self._buffer = bytearray()
        self._next_id = 1
        self.streamed: list[Message] = []
        self.counted = 0
        """Stream lines read in the background (`reading`), and not kept."""
        self._answers: dict[int | None, Message] = {}
        self._background = False
        self._arrived = anyio.Event()

    @classmethod
    async def connect(cls, path: Path, *, hello: bool = True) -> Raw:
        raw = cls(await anyio.connect_unix(path))
        if hello:
            answer = await raw.ask({"id": 0, "op": "hello", "version": 1})
            assert answer["ok"], answer
        return raw

    async def send(self, message: Message | bytes) -> None:
        data = message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n"
        await self.stream.send(data)

    async def line(self, timeout: float = 10.0) -> Message:
        """The next line the server sends, whatever it is."""
        with anyio.fail_after(timeout):
            while b"\n" not in self._buffer:
                try:
                    data = await self.stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    raise Closed(bytes(self._buffer)) from None
                if self.keep:
                    self.received += data
                self._buffer += data
        end = self._buffer.index(b"\n")
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        message: Message = json.loads(line)
        return message

    async def closed(self, timeout: float = 10.0) -> None:
        """Read until the server closes the connection (failing if it does not)."""
        with anyio.fail_after(timeout):
            while True:
                try:
                    await self.line(timeout)
                except Closed:
                    return

    async def answer(self, id_: int | None, timeout: float = 10.0) -> Message:
        """The answer to request `id_` (stream lines and other answers are kept aside)."""
        with anyio.fail_after(timeout):
            while id_ not in self._answers:
                if self._background:
                    self._arrived = anyio.Event()
                    await self._arrived.wait()
                    continue
                message = await self.line(timeout)
                if "stream" in message:
                    self.streamed.append(message)
                else:
                    self._answers[message["id"]] = message
        return self._answers.pop(id_)

    async def ask(self, message: Message | bytes, id_: int | None = None) -> Message:
        await self.send(message)
        if id_ is None and isinstance(message, dict):
            id_ = message.get("id")
        return await self.answer(id_)

    async def call(self, op: str, **args: Any) -> Message:
        """A request with a fresh id; its answer."""
        id_ = self._next_id
        self._next_id += 1
        message: Message = {"id": id_, "op": op}
        if args:
            message["args"] = args
        return await self.ask(message)

    async def result(self, op: str, **args: Any) -> Any:
        answer = await self.call(op, **args)
        assert answer["ok"], answer
        return answer["result"]

    async def events(self, stream: int, until: Any, timeout: float = 10.0) -> list[Message]:
        """Stream lines of `stream` (kept and new) until `until(event)` holds for one."""
        seen: list[Message] = []
        with anyio.fail_after(timeout):
            while True:
                mine = [m for m in self.streamed if m["id"] == stream]
                self.streamed = [m for m in self.streamed if m["id"] != stream]
                for index, message in enumerate(mine):
                    seen.append(message["stream"])
                    if until(message["stream"]):
                        self.streamed[:0] = mine[index + 1 :]  # not read yet: kept
                        return seen
                message = await self.line(timeout)
                if "stream" in message:
                    self.streamed.append(message)
                else:
                    self._answers[message["id"]] = message

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[None]:
        """Read everything as it comes, in a task: stream lines are counted, not kept."""

        async def read() -> None:
            while True:
                try:
                    message = await self.line(timeout=3600)
                except Closed:
                    return
                if "stream" in message:
                    self.counted += 1
                else:
                    self._answers[message["id"]] = message
                    self._arrived.set()

        async with anyio.create_task_group() as tg:
            self._background = True
            tg.start_soon(read)
            try:
                yield
            finally:
                self._background = False
                tg.cancel_scope.cancel()

    async def aclose(self) -> None:
        await self.stream.aclose()


@contextmanager
def short_folder() -> Iterator[Path]:
    """A folder whose paths fit in a socket address (pytest's tmp_path may not)."""
    with tempfile.TemporaryDirectory(prefix="tsk-", dir="/tmp") as folder:
        yield Path(folder)


@asynccontextmanager
async def serving(
    manifest: Manifest, path: Path, limits: Limits | None = None, **options: Any
) -> AsyncIterator[tuple[Host, ControlServer]]:
    """A host with its server, as the runners have them: bound first, closed last."""
    host = Host(manifest)
    server = ControlServer(host, SocketPath(path=path), limits=limits, **options)
    server.bind()
    host.env["TUISUP_SOCKET"] = str(path)
    async with server, host:
        yield host, server


def open_fds() -> set[int]:
    """This process's open descriptors (not the one that lists them, closed by then)."""
    return {int(fd) for fd in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{fd}")}
