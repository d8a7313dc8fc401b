"""Regressions: JSON that is valid but hostile in shape, and a hello of the wrong type.

Deeply nested JSON made the decoder raise RecursionError, which nothing caught: the
connection closed without an answer, and took the requests still running on it along.
A hello with `"version": true` was served, since True == 1 in Python.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.control.raw import Raw, serving, short_folder
from tuisup.control import protocol
from tuisup.control.server import Limits
from tuisup.spec import Manifest

DEEP = 100_000
NESTED = b"[" * DEEP + b"]" * DEEP


@pytest.fixture
def folder() -> Iterator[Path]:
    with short_folder() as path:
        yield path


def test_decode_refuses_deeply_nested_json_as_a_protocol_error() -> None:
    with pytest.raises(protocol.ProtocolError, match="nested too deeply"):
        protocol.decode(NESTED)
    with pytest.raises(protocol.ProtocolError, match="nested too deeply"):
        protocol.decode(b'{"id": 1, "op": "snapshot", "args": {"x": ' + NESTED + b"}}")


async def test_deeply_nested_json_is_answered_bad_request_and_the_connection_goes_on(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    async with serving(make_manifest(web="exec sleep 30"), folder / "s.sock"):
        raw = await Raw.connect(folder / "s.sock")
        # A request in flight when the hostile line comes: its answer must not be lost.
        await raw.send({"id": 7, "op": "snapshot"})
        answer = await raw.ask(NESTED + b"\n", None)
        assert answer["id"] is None and answer["error"]["code"] == "bad_request"
        assert "nested too deeply" in answer["error"]["message"]
        args = b'{"id": 8, "op": "scale", "args": {"name": "web", "count": ' + NESTED + b"}}\n"
        answer = await raw.ask(args, None)
        assert answer["error"]["code"] == "bad_request"
        assert (await raw.answer(7))["ok"]
        assert (await raw.result("snapshot"))["services"][0]["service"] == "web"
        await raw.aclose()


async def test_deeply_nested_lines_count_toward_closing_the_connection(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    limits = Limits(malformed=3)
    async with serving(make_manifest(web="exec sleep 30"), folder / "s.sock", limits):
        raw = await Raw.connect(folder / "s.sock")
        for _ in range(2):
            assert (await raw.ask(NESTED + b"\n", None))["error"]["code"] == "bad_request"
        await raw.send(NESTED + b"\n")  # the third
        assert (await raw.line())["error"]["code"] == "bad_request"
        await raw.closed()


async def test_a_deeply_nested_hello_is_answered_and_closed(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    async with serving(make_manifest(web="exec sleep 30"), folder / "s.sock"):
        raw = await Raw.connect(folder / "s.sock", hello=False)
        answer = await raw.ask(b'{"id": 0, "op": "hello", "version": ' + NESTED + b"}\n", None)
        assert answer["error"]["code"] == "bad_request"
        assert answer["error"]["message"].startswith("hello first (")
        await raw.closed()


@pytest.mark.parametrize(
    ("version", "shown"),
    [(True, "true"), ("1", '"1"'), (1.0, "1.0"), ([[1]], "an array"), ({"v": 1}, "an object")],
)
async def test_a_hello_whose_version_is_not_an_integer_is_refused(
    make_manifest: Callable[..., Manifest], folder: Path, version: object, shown: str
) -> None:
    async with serving(make_manifest(web="exec sleep 30"), folder / "s.sock"):
        raw = await Raw.connect(folder / "s.sock", hello=False)
        answer = await raw.ask({"id": 0, "op": "hello", "version": version})
        assert answer["error"] == {
            "code": "version",
            "message": f"protocol version {shown} is not served: this host speaks version 1",
        }
        await raw.closed()
