"""Regression: a connection reset while a request was being sent left asyncio's noise behind.

Under a storm of connections (the listen backlog full), `tuisup ps` exited with `the
connection to tuisup was lost: ConnectionResetError`, then asyncio printed `Future exception
was never retrieved ... ConnectionLost`: the request's own future had been failed with the
loss, and nobody ever looked at it. The reset is made here by a writer whose drain fails, as
asyncio's does once the transport is lost.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.control.raw import short_folder
from tuisup.control import protocol
from tuisup.control.client import ConnectionLost, RemoteHost


@pytest.fixture
def folder() -> Iterator[Path]:
    with short_folder() as path:
        yield path


async def greeter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A host that answers the hello, then reads (and answers) nothing more."""
    await reader.readline()
    writer.write(protocol.encode(protocol.ok(0, {"version": 1, "pid": 1, "manifest": "/m"})))
    await reader.read()  # until the client goes
    writer.close()


async def reset(self: asyncio.StreamWriter) -> None:
    raise ConnectionResetError("Connection lost")


def unretrieved(contexts: list[dict[str, Any]]) -> list[str]:
    """What asyncio would have printed of futures whose exception nobody retrieved."""
    gc.collect()  # a future that failed and was dropped says so as it is collected
    return [str(c.get("message")) for c in contexts if "never retrieved" in str(c.get("message"))]


async def test_a_request_whose_send_is_reset_fails_quietly(folder: Path) -> None:
    contexts: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: contexts.append(context))
    server = await asyncio.start_unix_server(greeter, folder / "s.sock")
    remote = await RemoteHost.connect(folder / "s.sock", mirror=False)
    remote._writer.drain = reset.__get__(remote._writer)  # type: ignore[method-assign]
    with pytest.raises(ConnectionLost, match="ConnectionResetError: Connection lost"):
        await remote.request("snapshot")
    await remote.close()
    server.close()
    await server.wait_closed()
    assert unretrieved(contexts) == []


async def test_a_hello_whose_send_is_reset_fails_quietly(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contexts: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: contexts.append(context))
    server = await asyncio.start_unix_server(greeter, folder / "s.sock")
    monkeypatch.setattr(asyncio.StreamWriter, "drain", reset)
    with pytest.raises(ConnectionLost, match="ConnectionResetError: Connection lost"):
        await RemoteHost.connect(folder / "s.sock")
    monkeypatch.undo()
    server.close()
    await server.wait_closed()
    assert unretrieved(contexts) == []
