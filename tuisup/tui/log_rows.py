"""Provides ShownLines: the lines a log view shows, and the row where each one starts.

With wrap on, a line takes one row or more, and knowing how many means rendering it.
So a line is first given an estimate (its length over the width, which is cheap), made
exact when the line comes on screen (`settle`). Lines are added at the end and dropped
at the front in time proportional to how many; a row is found by bisection. No Textual
here: the view decides what a line's rows are, this only keeps count.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterator
from itertools import accumulate, islice
from typing import NamedTuple

COMPACT_AFTER = 4096
"""Dropped lines at the front kept before the lists are cut (then at most half of them)."""


class Entry(NamedTuple):
    """One kept line as the view shows it."""

    seq: int
    service: str
    stream: str
    ts: float
    text: str


class ShownLines:
    """The shown lines in order, each with its row count, exact or estimated."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget every line."""
        self._entries: list[Entry] = []
        self._rows: list[int] = []
        self._exact: list[bool] = []
        self._starts: list[int] = [0]
        """`_starts[k]`: rows before the k-th line of the lists, dropped ones included."""
        self._front = 0
        """Lines before it were dropped (they are cut from the lists now and then)."""
        self._stale: int | None = None
        """The first `_starts` entry a changed count made wrong, fixed on the next read."""

    def __len__(self) -> int:
        return len(self._entries) - self._front

    def __getitem__(self, index: int) -> Entry:
        return self._entries[self._front + index]

    def __iter__(self) -> Iterator[Entry]:
        return islice(self._entries, self._front, None)

    def extend(self, entries: list[Entry], rows: list[int]) -> None:
        """Add lines at the end, each with an estimate of its rows."""
        self._entries.extend(entries)
        self._rows.extend(rows)
        self._exact.extend([False] * len(rows))
        if self._stale is None:
            self._starts.extend(islice(accumulate(rows, initial=self._starts[-1]), 1, None))

    def drop_before(self, seq: int) -> None:
        """Drop the lines at the front numbered below `seq` (they aged out of the log)."""
        entries, front = self._entries, self._front
        while front < len(entries) and entries[front].seq < seq:
            front += 1
        self._front = front
        if front > COMPACT_AFTER and front * 2 > len(entries):
            self._fix()
            base = self._starts[front]
            del self._entries[:front], self._rows[:front], self._exact[:front]
            self._starts = [start - base for start in self._starts[front:]]
            self._front = 0

    @property
    def height(self) -> int:
        """Rows of all the lines."""
        self._fix()
        return self._starts[-1] - self._starts[self._front]

    def start(self, index: int) -> int:
        """The row where a line starts."""
        self._fix()
        return self._starts[self._front + index] - self._starts[self._front]

    def rows(self, index: int) -> int:
        """How many rows a line takes (exact once it was measured)."""
        return self._rows[self._front + index]

    def locate(self, row: int) -> tuple[int, int]:
        """Return the line that `row` shows, and which of its rows it is."""
        self._fix()
        absolute = row + self._starts[self._front]
        k = bisect_right(self._starts, absolute, self._front, len(self._entries)) - 1
        return k - self._front, absolute - self._starts[k]

    def settle(self, top: int | None, screen: int, measure: Callable[[Entry], int]) -> bool:
        """Measure exactly the lines a screen shows from row `top` (None: the last screen).

        Only rows below the first line on screen move: what is above it keeps its
        estimate, so the screen's own top stays where it was. Returns whether a count
        changed (and with it the height).
        """
        if not len(self):
            return False
        changed, covered = False, 0
        if top is None:
            index, step = len(self) - 1, -1
        else:
            index, part = self.locate(min(max(top, 0), self.height - 1))
            covered, step = -part, 1
        while 0 <= index < len(self) and covered < screen:
            changed |= self._measure(index, measure)
            covered += self.rows(index)
            index += step
        return changed

    def _measure(self, index: int, measure: Callable[[Entry], int]) -> bool:
        k = self._front + index
        if self._exact[k]:
            return False
        self._exact[k] = True
        rows = measure(self._entries[k])
        if rows == self._rows[k]:
            return False
        self._rows[k] = rows
        self._stale = k if self._stale is None else min(self._stale, k)
        return True

    def _fix(self) -> None:
        """Bring the starts up to date from the first line whose count changed."""
        stale = self._stale
        if stale is None:
            return
        del self._starts[stale + 1 :]
        starts = accumulate(self._rows[stale:], initial=self._starts[stale])
        self._starts.extend(islice(starts, 1, None))
        self._stale = None
