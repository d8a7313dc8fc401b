"""Provides the formats of services' log files: how lines are written, and read back.

A line in the file is, by `log_format`:

- `text`: the line as the service wrote it, after the RFC 3339 time (milliseconds, local
  offset) it was read and a space when `log_timestamps` is on;
- `json`: `{"ts": TIME, "stream": "stdout", "line": TEXT}`, where bytes that are not UTF-8
  are lone surrogates U+DC80..U+DCFF (Python's `surrogateescape`), so that
  `line.encode("utf-8", "surrogateescape")` gives back the very bytes;
- `raw`: the bytes exactly as written, with no time.

Imports nothing but the standard library: `tuisup logs` reads files with no host running.
"""

from __future__ import annotations

import json
import time
from datetime import datetime

from tuisup.spec import LogFormat, LogOptions


class Stamper:
    """Makes RFC 3339 times with milliseconds, the calendar part made once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._head = ""
        self._offset = ""

    def __call__(self, ts: float) -> str:
        """`2026-11-29T17:12:55.123+01:00` for the Unix time `ts`."""
        second = int(ts)
        if second != self._second:
            local = time.localtime(second)
            self._head = time.strftime("%Y-%m-%dT%H:%M:%S", local)
            minutes = local.tm_gmtoff // 60
            sign = "-" if minutes < 0 else "+"
            self._offset = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
            self._second = second
        return f"{self._head}.{int((ts - second) * 1000):03d}{self._offset}"


class LineEncoder:
    """Turns lines read from a service into the bytes of its log file, in one format."""

    def __init__(self, options: LogOptions) -> None:
        self.options = options
        self._stamp = Stamper()

    @property
    def raw(self) -> bool:
        """Whether the bytes go to the file as they are (no time, no JSON)."""
        options = self.options
        return options.format is LogFormat.RAW or (
            options.format is LogFormat.TEXT and not options.timestamps
        )

    def encode(
        self, data: bytes, ts: float, stream: str, *, head: bytes = b"", end: int | None = None
    ) -> list[bytes | memoryview]:
        """The file's bytes for `head + data[:end]`, in parts that the write gathers.

        Nothing is joined or sliced here but what the format needs: a pipe's chunk goes to
        the file as it was read, or through one `replace` that puts the times in.

        Args:
            data: Lines as read, each ending with a newline (the last one may not: a piece
                of a longer line, which gets a line end).
            ts: The Unix time they were read.
            stream: `stdout`, `stderr`, or tuisup's own (`tuisup`, `hook`).
            head: The start of the first line, read before (it holds no newline).
            end: Where the lines end in `data` (just after a newline); None: its end.
        """
        end = len(data) if end is None else end
        if self.raw:
            return [head, memoryview(data)[:end]]
        if end == len(data) and not data.endswith(b"\n"):
            data += b"\n"
            end += 1
        stamp = self._stamp(ts)
        if self.options.format is LogFormat.JSON:
            lines = (head + data[:end]).decode("utf-8", "surrogateescape")
            # What `json.dumps({"ts": stamp, "stream": stream, "line": line})` writes, its
            # start made once per chunk: dumping a whole dict per line cost five times more.
            start = f'{{"ts": {json.dumps(stamp)}, "stream": {json.dumps(stream)}, "line": '
            text = "".join(f"{start}{json.dumps(line)}}}\n" for line in lines[:-1].split("\n"))
            return [text.encode()]
        prefix = stamp.encode() + b" "
        # One copy: every line end gets the next line's time; the time after the last one,
        # and the bytes after `end`, are left out.
        body = data.replace(b"\n", b"\n" + prefix)
        keep = len(body) - (len(data) - end) - len(prefix)
        return [prefix, head, memoryview(body)[:keep]]


def parse_stamp(text: str) -> float | None:
    """The Unix time of an RFC 3339 time as `Stamper` writes it (None: not one)."""
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
