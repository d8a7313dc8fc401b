"""Provides LogBatch: consecutive kept lines of one service, numbered in the host's log."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MARKER_STREAM = "tuisup"
"""The stream name of tuisup's own lines in a service's log (restart markers)."""


@dataclass(frozen=True, slots=True)
class LogBatch:
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
            self.service, self.stream, seq + 1, self.ts, self.lines[seq + 1 - self.first :]
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
            str(data["service"]),
            str(data["stream"]),
            int(data["first"]),
            float(data["ts"]),
            [str(line) for line in data["lines"]],
        )
