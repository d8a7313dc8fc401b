"""A CPU-bound worker as a `tuisup.Service` subclass, in a child process of its own.

It works in bursts: hashes flat out for BURST seconds, then rests for REST, so the
console's CPU column shows it busy, then idle, without holding a core for as long as
the demo runs.
"""

import hashlib
import time

import tuisup

BURST = 1.5
"""Seconds of hashing flat out."""
REST = 2.5
"""Seconds of rest between two bursts."""


class Cruncher(tuisup.Service):
    """Hashes in bursts and reports each burst's rate."""

    def run(self) -> None:
        """Crunch, rest, again, until cancellation is requested."""
        token = self.cancellation_token
        digest = b"tuisup"
        while not token.is_cancellation_requested:
            done, began = 0, time.monotonic()
            while time.monotonic() - began < BURST and not token.is_cancellation_requested:
                for _ in range(10_000):
                    digest = hashlib.sha256(digest).digest()
                done += 10_000
            took = time.monotonic() - began
            print(f"{done / took:,.0f} hashes/s for {took:.1f}s, digest {digest.hex()[:12]}")
            token.wait(REST)  # a rest that a stop ends at once
        self.log.info("cruncher stopped")
