"""Provides the control protocol's shapes: one JSON object per line, both ways (version 1).

    client: {"id": 0, "op": "hello", "version": 1}
    server: {"id": 0, "ok": true, "result": {"version": 1, "tuisup": "0.1.0", "pid": ...}}
    client: {"id": 1, "op": "restart", "args": {"name": "web"}}
    server: {"id": 1, "ok": true, "result": {"moved": []}}
            {"id": 2, "ok": false, "error": {"code": "unknown_service", "message": "..."}}
    stream: {"id": 3, "stream": {...one event, as `--no-tui --json` prints it...}}

Requests carry an `id` the client chooses; answers and stream lines carry it back. A stream
(`subscribe`) is answered once (the snapshot), then sends its events as stream lines until
`unsubscribe` or the end of the connection. The reference is in the README ("Controlling
a running tuisup").
"""

from __future__ import annotations

import json
from typing import Any

VERSION = 1
"""The protocol version a hello names; a server refuses another."""
MAX_LINE = 1 << 20
"""Bytes a line may have (without its newline); a longer one ends the connection."""
HELLO_WITHIN = 10.0
"""Seconds a client has to say hello once connected."""


class ProtocolError(Exception):
    """A line that is not a message of this protocol (bad JSON, not an object, too long)."""


def encode(message: dict[str, Any]) -> bytes:
    """One message as a line of UTF-8 JSON."""
    return dumps(message) + b"\n"


def dumps(value: Any) -> bytes:
    r"""A JSON value as compact UTF-8.

    Text that is not valid Unicode (a lone surrogate: a file name that is not UTF-8, as
    Python decodes it) cannot be UTF-8: it goes as its JSON escape (`\udcff`), which a
    JSON reader turns back into the same string.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "backslashreplace")


def stream_line(id_: int, event: bytes) -> bytes:
    """`encode(stream(id_, e))`, byte for byte, for an event already encoded (`dumps(e)`).

    A server encodes each event once, however many streams send it.
    """
    return b'{"id":%d,"stream":%s}\n' % (id_, event)


def decode(line: bytes, most: int = MAX_LINE) -> dict[str, Any]:
    """One line (its newline, if any, included) as a message.

    Args:
        line: The line.
        most: Bytes it may have: MAX_LINE for a request; a client reading answers (a big
            snapshot, a log read) allows more.

    Raises:
        ProtocolError: Not JSON, not UTF-8, not an object, over `most` bytes, or nested
            too deeply to read.
    """
    if len(line) > most + 1:
        raise ProtocolError(f"line over {most} bytes")
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    except RecursionError:  # `[[[...]]]`: the decoder recurses once per level
        raise ProtocolError("JSON nested too deeply") from None
    if not isinstance(message, dict):
        raise ProtocolError("not a JSON object")
    return message


def hello(id_: int = 0) -> dict[str, Any]:
    """A client's first message: the protocol version it speaks."""
    return {"id": id_, "op": "hello", "version": VERSION}


def request(id_: int, op: str, **args: Any) -> dict[str, Any]:
    """A request (`args` left out when there are none)."""
    message: dict[str, Any] = {"id": id_, "op": op}
    if args:
        message["args"] = args
    return message


def ok(id_: int | None, result: Any = None) -> dict[str, Any]:
    """A request's answer: done."""
    return {"id": id_, "ok": True, "result": {} if result is None else result}


def error(id_: int | None, code: str, message: str) -> dict[str, Any]:
    """A request's answer: refused, or failed; `code` is the error's (see tuisup.model)."""
    return {"id": id_, "ok": False, "error": {"code": code, "message": message}}


def stream(id_: int, event: dict[str, Any]) -> dict[str, Any]:
    """One event of the stream that request `id_` opened."""
    return {"id": id_, "stream": event}
