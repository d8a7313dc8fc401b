"""Provides `tuisup logs` when no tuisup runs: the services' log files, rotated ones too.

Each service's files are read newest first (`NAME.log`, then `NAME.log.1`, ...) until
enough lines are found (`-n`) or the lines are older than `--since`, and printed oldest
first, several services merged by time. Each line is read in whatever format it was
written (`tuisup.logfiles`): a JSON object, a line after its time, or raw bytes, which
carry no time (the file's last change stands for it).

Imports neither anyio nor Textual: no host runs, there is nothing to wait for.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tuisup.logfiles import parse_stamp
from tuisup.model.logs import MARKER_STREAM, LogBatch

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_STAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(?:Z|[+-]\d\d:\d\d) ")
_OWN = ("tuisup: ", "── ")
"""How tuisup's own lines (markers) begin in a text file, which names no stream."""


def since_time(text: str, now: float) -> float:
    """The Unix time `--since` means: `90s`, `10m`, `2h`, `1d` ago, or an RFC 3339 time.

    Raises:
        ValueError: It is neither.
    """
    found = _DURATION.fullmatch(text)
    if found:
        return now - float(found[1]) * _UNITS[found[2] or "s"]
    when = parse_stamp(text)
    if when is None:
        raise ValueError(f'expected a duration such as "10m", or a time, got "{text}"')
    return when


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a log file, read back."""

    ts: float
    stream: str
    text: str


def parse_line(raw: bytes, fallback: float) -> Line:
    """Read one line (without its newline) in whichever format it was written."""
    if raw.startswith(b'{"ts": '):
        try:
            data = json.loads(raw)
            ts = parse_stamp(data["ts"])
            # Bytes that were not UTF-8 come back as they were, then are shown as `�`, as
            # the kept lines show them (and stdout may not take a lone surrogate).
            line = str(data["line"]).encode("utf-8", "surrogateescape")
            text = line.decode("utf-8", "replace")
            return Line(fallback if ts is None else ts, str(data["stream"]), text)
        except (ValueError, KeyError, TypeError, UnicodeEncodeError):
            pass  # a service's own line that looks like one: raw
    stream = "stdout"
    if _STAMP.match(raw):
        stamp, raw = raw.split(b" ", 1)
        fallback = parse_stamp(stamp.decode()) or fallback
    text = raw.decode("utf-8", "replace").removesuffix("\r")
    if text.startswith(_OWN):
        stream = MARKER_STREAM
    return Line(fallback, stream, text)


def files_of(folder: Path, service: str) -> list[Path]:
    """A service's log files, newest first: `NAME.log`, `NAME.log.1`, `NAME.log.2`, ..."""
    prefix = f"{service}.log."
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    backups = [
        (int(name[len(prefix) :]), folder / name)
        for name in names
        if name.startswith(prefix) and name[len(prefix) :].isdigit()
    ]
    newest = [folder / f"{service}.log"] if f"{service}.log" in names else []
    return newest + [path for _, path in sorted(backups)]


def read_service(
    folder: Path, service: str, wanted: Callable[[Line], bool], limit: int | None, since: float
) -> list[Line]:
    """The lines of one service that are `wanted`, oldest first: the last `limit`, from `since`."""
    found: list[Line] = []
    for path in files_of(folder, service):
        lines, older = _read_file(path, wanted, since)
        found[:0] = lines
        if older or (limit is not None and len(found) >= limit):
            break
    return found[-limit:] if limit is not None else found


def _read_file(path: Path, wanted: Callable[[Line], bool], since: float) -> tuple[list[Line], bool]:
    """The wanted lines of one file from `since`, and whether it had older lines too."""
    try:
        data = path.read_bytes()
        fallback = path.stat().st_mtime
    except OSError:
        return [], False
    lines = [parse_line(raw, fallback) for raw in _split(data)]
    kept = [line for line in lines if line.ts >= since and wanted(line)]
    return kept, bool(lines) and lines[0].ts < since


def _split(data: bytes) -> Iterator[bytes]:
    parts = data.split(b"\n")
    if parts and not parts[-1]:
        parts.pop()
    return iter(parts)


def read_logs(
    folder: Path,
    services: list[str],
    *,
    limit: int | None = None,
    since: float = 0.0,
    grep: re.Pattern[str] | None = None,
) -> list[LogBatch]:
    """The lines of `services` from their files, merged by time, as batches numbered from 1.

    Args:
        folder: The log folder (`[tuisup] log_dir`).
        services: Whose lines.
        limit: Only the last `limit` lines in all.
        since: Only lines read at or after this Unix time.
        grep: Only lines in which this pattern is found.
    """

    def wanted(line: Line) -> bool:
        return grep is None or grep.search(line.text) is not None

    merged = [
        (line.ts, order, service, line)
        for order, service in enumerate(services)
        for line in read_service(folder, service, wanted, limit, since)
    ]
    if len(services) > 1:  # one service's lines stay in the order of its files
        merged.sort(key=lambda item: (item[0], item[1]))
    if limit is not None:
        merged = merged[-limit:]
    batches: list[LogBatch] = []
    for number, (ts, _, service, line) in enumerate(merged, start=1):
        last = batches[-1] if batches else None
        if last is not None and (last.service, last.stream, last.ts) == (service, line.stream, ts):
            last.lines.append(line.text)
            continue
        batches.append(
            LogBatch(service=service, stream=line.stream, first=number, ts=ts, lines=[line.text])
        )
    return batches
