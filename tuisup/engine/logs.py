"""Provides line framing of service output, the bounded in-memory log stores and log files.

Output arrives as raw chunks of bytes. A `LineFramer` per stream turns them into lines:
it decodes incrementally (a character split across reads stays whole, invalid UTF-8 becomes
U+FFFD), drops the carriage return of a CRLF ending, keeps a partial last line until it is
completed or flushed at exit, and splits a line longer than `line_max` characters into pieces, each
but the last ending with `CONTINUATION`. Log files get the bytes, cut at line ends so
that stdout and stderr never interleave inside a line, in each service's `log_format`.
Kept lines and file lines carry the same time: when they were read.
"""

from __future__ import annotations

import codecs
import functools
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from tuisup.engine.logfile import FileNews, LogFile
from tuisup.model.logs import MARKER_STREAM as MARKER_STREAM
from tuisup.model.logs import LogBatch as LogBatch
from tuisup.spec import LogOptions

LINE_MAX = 16_384
"""Characters in one kept line; longer lines are split."""
CONTINUATION = " ⏎"
"""Ends every piece of a split line but the last."""


class LineFramer:
    """Turns chunks of bytes from one stream into complete lines."""

    def __init__(self, line_max: int = LINE_MAX) -> None:
        self.line_max = line_max
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""

    def feed(self, data: bytes) -> list[str]:
        """Return the lines that `data` completes."""
        text = self._partial + self._decoder.decode(data)
        lines = text.split("\n")
        self._partial = lines.pop()
        lines = self._tidy(lines, "\r" in text)
        if len(self._partial) > self.line_max:
            # A line with no end in sight: hand out its full pieces, keep the tail.
            cut = len(self._partial) - len(self._partial) % self.line_max
            if cut == len(self._partial):
                cut -= self.line_max
            lines.extend(p + CONTINUATION for p in self._pieces(self._partial[:cut]))
            self._partial = self._partial[cut:]
        return lines

    def flush(self) -> list[str]:
        """Return the partial last line (and any buffered bytes) at end of stream."""
        text = self._partial + self._decoder.decode(b"", final=True)
        self._partial = ""
        return self._tidy([text], "\r" in text) if text else []

    def _tidy(self, lines: list[str], has_cr: bool) -> list[str]:
        if not lines:
            return lines
        if has_cr:
            lines = [line[:-1] if line.endswith("\r") else line for line in lines]
        if max(map(len, lines)) > self.line_max:
            out: list[str] = []
            for line in lines:
                out.extend(self._split(line) if len(line) > self.line_max else (line,))
            return out
        return lines

    def _pieces(self, line: str) -> list[str]:
        step = self.line_max
        return [line[i : i + step] for i in range(0, len(line), step)]

    def _split(self, line: str) -> list[str]:
        pieces = self._pieces(line)
        return [p + CONTINUATION for p in pieces[:-1]] + pieces[-1:]


class LogRing:
    """A bounded run of batches holding at most `max_lines` lines."""

    def __init__(self, max_lines: int) -> None:
        self.max_lines = max_lines
        self._batches: deque[LogBatch] = deque()
        self._count = 0
        self.dropped = 0
        """Lines pushed out to keep the bound."""

    def __len__(self) -> int:
        return self._count

    def append(self, batch: LogBatch) -> None:
        """Keep `batch`, dropping the oldest lines past the bound."""
        self._batches.append(batch)
        self._count += len(batch.lines)
        while self._count > self.max_lines:
            oldest = self._batches[0]
            excess = self._count - self.max_lines
            if len(oldest.lines) <= excess:
                self._batches.popleft()
                self._count -= len(oldest.lines)
                self.dropped += len(oldest.lines)
            else:
                self._batches[0] = oldest.after(oldest.first + excess - 1)
                self._count -= excess
                self.dropped += excess

    def since(self, seq: int) -> list[LogBatch]:
        """Return the kept lines numbered after `seq`, as batches in order."""
        out: list[LogBatch] = []
        for batch in reversed(self._batches):
            if batch.end <= seq + 1:
                break
            out.append(batch.after(seq))
        out.reverse()
        return out

    def clear(self) -> None:
        """Forget every kept line."""
        self._batches.clear()
        self._count = 0


class LogStore:
    """The kept logs of every service, one ring each plus a merged ring, numbered globally.

    `on_lines` is called with every new batch (the host turns it into an `Output` event).
    When a log file fails or works again, a marker line says so in the service's log, and
    `on_file` is called with the news (the host turns it into a `LogFileChanged` event).
    """

    def __init__(
        self,
        max_lines: int,
        log_dir: Path | None,
        on_lines: Callable[[LogBatch], None],
        on_file: Callable[[str, FileNews], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_lines = max_lines
        self.log_dir = log_dir
        self._on_lines = on_lines
        self._on_file = on_file
        self._clock = clock
        self._rings: dict[str, LogRing] = {}
        self._files: dict[str, LogFile] = {}
        self.merged = LogRing(max_lines)
        self._next = 1

    @property
    def last_seq(self) -> int:
        """The number of the newest kept line (0 before any)."""
        return self._next - 1

    def ring(self, service: str) -> LogRing:
        """Return the service's ring, creating it on first use."""
        ring = self._rings.get(service)
        if ring is None:
            ring = self._rings[service] = LogRing(self.max_lines)
        return ring

    def file(self, service: str) -> LogFile | None:
        """Return the service's log file writer, or None when log files are off."""
        if self.log_dir is None:
            return None
        log = self._files.get(service)
        if log is None:
            path = self.log_dir / f"{service}.log"
            report = functools.partial(self._file_news, service)
            log = self._files[service] = LogFile(path, report, self._clock)
        return log

    def configure(self, service: str, options: LogOptions) -> None:
        """Write and rotate the service's file as `options` say, from its next line on.

        The file keeps them: made now if need be, it is opened only at its first line.
        """
        log = self.file(service)
        if log is not None:
            log.options = options

    def reopen(self) -> None:
        """Open every log file's path again at its next write (after an outside rotation)."""
        for log in self._files.values():
            log.reopen()

    def file_problem(self, service: str) -> str | None:
        """Say what is wrong with the service's log file while it cannot be written."""
        log = self._files.get(service)
        if log is None or log.error is None:
            return None
        return FileNews(path=log.path, writing=False, error=log.error).describe()

    def _file_news(self, service: str, news: FileNews) -> None:
        """Say in the service's log what happened to its file (the file has the line if it can)."""
        self.add(service, MARKER_STREAM, [f"tuisup: {news.describe()}"])
        if self._on_file is not None:
            self._on_file(service, news)

    def add(self, service: str, stream: str, lines: list[str], ts: float | None = None) -> LogBatch:
        """Keep `lines`, read at `ts` (default: now), and announce them."""
        when = time.time() if ts is None else ts
        batch = LogBatch(service=service, stream=stream, first=self._next, ts=when, lines=lines)
        self._next += len(lines)
        self.ring(service).append(batch)
        self.merged.append(batch)
        self._on_lines(batch)
        return batch

    def marker(self, service: str, text: str) -> None:
        """Keep one of tuisup's own lines (a restart marker) in the service's log and file."""
        now = time.time()
        log = self.file(service)
        if log is not None:
            log.write_lines(_encoded(f"{text}\n"), now, MARKER_STREAM)
        self.add(service, MARKER_STREAM, [text], now)

    def since(self, service: str | None, seq: int) -> list[LogBatch]:
        """Return the kept lines after `seq` of one service, or of all when `service` is None."""
        if service is None:
            return self.merged.since(seq)
        ring = self._rings.get(service)
        if ring is not None:
            return ring.since(seq)
        # A service that left: what the merged log still holds of it.
        return [batch for batch in self.merged.since(seq) if batch.service == service]

    def forget(self, service: str) -> None:
        """Drop a service's ring and close its file (it left the manifest)."""
        self._rings.pop(service, None)
        log = self._files.pop(service, None)
        if log is not None:
            log.close()

    def close(self) -> None:
        """Close every log file."""
        for log in self._files.values():
            log.close()


class StreamSink:
    """Where one stream of one run writes: frames lines, keeps them, and appends the file."""

    def __init__(self, store: LogStore, service: str, stream: str) -> None:
        self._store = store
        self._service = service
        self._stream = stream
        self._framer = LineFramer()
        self._file = store.file(service)
        self._raw_tail = b""

    def write(self, data: bytes) -> None:
        """Take one chunk read from the pipe: its lines are kept and written as read now."""
        now = time.time()
        log = self._file
        if log is not None:
            # Write whole lines only, so the other stream's lines never land inside one.
            cut = data.rfind(b"\n") + 1
            if cut:  # no copy of the chunk on the way, but the times put in
                log.write_lines(data, now, self._stream, head=self._raw_tail, end=cut)
                self._raw_tail = data[cut:]
            else:
                self._raw_tail += data
                if len(self._raw_tail) > LINE_MAX * 4:
                    log.write_lines(self._raw_tail, now, self._stream)
                    self._raw_tail = b""
        lines = self._framer.feed(data)
        if lines:
            self._store.add(self._service, self._stream, lines, now)

    def close(self) -> None:
        """End of stream: flush the partial last line to the store and the file."""
        now = time.time()
        if self._file is not None and self._raw_tail:
            self._file.write_lines(self._raw_tail + b"\n", now, self._stream)
            self._raw_tail = b""
        lines = self._framer.flush()
        if lines:
            self._store.add(self._service, self._stream, lines, now)


def _encoded(text: str) -> bytes:
    """`text` as UTF-8, whatever lone surrogates it holds (it can be an exception's message).

    Those of a file name decoded from bytes that are not UTF-8 go back to those bytes, as a
    service's own output keeps its bytes; any other is written as its escape.
    """
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace")
