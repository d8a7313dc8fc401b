"""Provides LogBatch: consecutive kept lines of one service, numbered in the host's log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tuisup.model.record import Record

MARKER_STREAM = "tuisup"
"""The stream name of tuisup's own lines in a service's log (restart markers)."""


class LogBatch(Record):
    """Consecutive kept lines of one service and stream; line `i` has number `first + i`."""

    service: str
    stream: str
    first: int
    ts: float
    """Unix time the lines were read (kept)."""
    lines: list[str]

    @property
    def end(self) -> int:
        """The number one past the last line."""
        return self.first + len(self.lines)

    def after(self, seq: int) -> LogBatch:
        """Return the part of this batch whose line numbers are greater than `seq`."""
        if seq < self.first:
            return self
        return LogBatch(
            service=self.service,
            stream=self.stream,
            first=seq + 1,
            ts=self.ts,
            lines=self.lines[seq + 1 - self.first :],
        )

    def to_json(self) -> dict[str, Any]:
        """Return the batch as JSON-ready data."""
        return {
            "service": self.service,
            "stream": self.stream,
            "first": self.first,
            "ts": round(self.ts, 6),
            "lines": self.lines,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LogBatch:
        """Read back what `to_json` wrote."""
        return cls(
            service=str(data["service"]),
            stream=str(data["stream"]),
            first=int(data["first"]),
            ts=float(data["ts"]),
            lines=[str(line) for line in data["lines"]],
        )


def last_lines(batches: list[LogBatch], limit: int) -> list[LogBatch]:
    """The batches cut to their last `limit` lines in all."""
    kept: list[LogBatch] = []
    left = limit
    for batch in reversed(batches):
        if left <= 0:
            break
        if len(batch.lines) > left:
            batch = batch.after(batch.end - left - 1)
        kept.append(batch)
        left -= len(batch.lines)
    kept.reverse()
    return kept
