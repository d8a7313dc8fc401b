"""Provides Outbox: the bytes waiting to go to one client, bounded.

Answers always go in: a request was made, its answer is owed (the connection stops reading
requests while the box is full, so a client that never reads its answers cannot grow it).
Stream lines are only offered: one that does not fit is refused, and its stream drops it
and says so later (`missed`). The writer takes bytes out in chunks; a client that takes
nothing for a while is cut off by the writer, not here.
"""

from __future__ import annotations

from collections import deque

import anyio


class Outbox:
    """A queue of bytes with a soft bound: `offer` respects it, `put` does not."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        """Bytes beyond which stream lines are refused and requests are not read."""
        self.size = 0
        self._chunks: deque[bytes | memoryview] = deque()
        self._closed = False
        self._discarding = False
        self._filled = anyio.Event()
        self._emptied = anyio.Event()

    @property
    def full(self) -> bool:
        """Whether it holds `limit` bytes or more."""
        return self.size >= self.limit

    @property
    def roomy(self) -> bool:
        """Whether it is at most half full: a stream that dropped lines may speak again.

        Half, not just below the bound, so that a stream does not flap line by line.
        """
        return self.size <= self.limit // 2

    def put(self, data: bytes) -> None:
        """Queue `data` whatever the size (an answer that is owed)."""
        if self._discarding:
            return
        self._chunks.append(data)
        self.size += len(data)
        self._filled.set()

    def offer(self, data: bytes) -> bool:
        """Queue `data` if it fits; return whether it did.

        It fits an empty box whatever its size: a line bigger than the bound must still go.
        """
        if self.size and self.size + len(data) > self.limit:
            return False
        self.put(data)
        return True

    def discard(self) -> None:
        """The client is gone: drop what waits, and whatever is put from now on."""
        self._discarding = True
        self._chunks.clear()
        self.size = 0
        self._emptied.set()
        self.close()

    def close(self) -> None:
        """Nothing more comes: `take` returns None once the rest is taken."""
        self._closed = True
        self._filled.set()

    async def take(self, most: int) -> bytes | None:
        """Up to `most` bytes from the front, once there are some; None once closed and empty."""
        while not self._chunks:
            if self._closed:
                return None
            self._filled = anyio.Event()
            await self._filled.wait()
        parts: list[bytes | memoryview] = []
        taken = 0
        while self._chunks and taken < most:
            chunk = self._chunks.popleft()
            if taken + len(chunk) > most:  # split it: each send stays small, see the writer
                cut = most - taken
                self._chunks.appendleft(memoryview(chunk)[cut:])
                chunk = memoryview(chunk)[:cut]
            parts.append(chunk)
            taken += len(chunk)
        self.size -= taken
        if not self.full:
            self._emptied.set()
        return b"".join(parts)

    async def room(self) -> None:
        """Return once the box is below its bound."""
        while self.full:
            self._emptied = anyio.Event()
            await self._emptied.wait()
