"""Provides what the host sees of its services' OS processes: trees, CPU and memory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Proc:
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


@dataclass(frozen=True, slots=True)
class ProcessStats:
    """Every service's process tree, and the totals of all of them."""

    trees: dict[str, tuple[Proc, ...]] = field(default_factory=dict)
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
                Proc(int(a), int(b), str(c), float(d), int(e), bool(f)) for a, b, c, d, e, f in rows
            )
            for name, rows in data.get("trees", {}).items()
        }
        return cls(trees, float(data.get("cpu", 0.0)), int(data.get("rss", 0)))
