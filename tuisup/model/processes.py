"""Provides what the host sees of its services' OS processes: trees, CPU and memory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tuisup.model.record import Record


class Proc(Record):
    """One OS process under a service."""

    pid: int
    depth: int
    """0 for the service's main process, 1 for its children, ..."""
    command: str
    """What the user wrote for the main process of a Python service; a command line else."""
    cpu: float
    """Percent of one core since the last look."""
    rss: int
    """Resident memory, in bytes."""
    escaped: bool
    """It left the service's process group (setsid, a double fork)."""
    cpu_time: float = 0.0
    """CPU seconds (user and system) it has used; for the metrics, not sent to clients."""


class ProcessStats(Record):
    """Every service's process tree, and the totals of all of them."""

    trees: Mapping[str, tuple[Proc, ...]] = {}  # shared by every record: never mutated
    cpu: float = 0.0
    rss: int = 0

    def to_json(self) -> dict[str, Any]:
        """Return the stats as JSON-ready data."""
        return {
            "trees": {
                name: [
                    [p.pid, p.depth, p.command, round(p.cpu, 1), p.rss, p.escaped] for p in procs
                ]
                for name, procs in self.trees.items()
            },
            "cpu": round(self.cpu, 1),
            "rss": self.rss,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessStats:
        """Read back what `to_json` wrote."""
        trees = {
            name: tuple(
                Proc(pid=a, depth=b, command=c, cpu=d, rss=e, escaped=bool(f))
                for a, b, c, d, e, f in rows
            )
            for name, rows in data.get("trees", {}).items()
        }
        return cls(trees=trees, cpu=float(data.get("cpu", 0.0)), rss=int(data.get("rss", 0)))
