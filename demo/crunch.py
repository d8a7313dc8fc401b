"""A CPU-bound worker as a `tuisup.Service` subclass, in a child process of its own."""

import hashlib
import time

import tuisup


class Cruncher(tuisup.Service):
    """Hashes as fast as it can and reports its rate every two seconds."""

    def run(self) -> None:
        """Crunch until cancellation is requested."""
        digest = b"tuisup"
        done, since = 0, time.monotonic()
        while not self.cancellation_token.is_cancellation_requested:
            for _ in range(10_000):
                digest = hashlib.sha256(digest).digest()
            done += 10_000
            if (elapsed := time.monotonic() - since) >= 2.0:
                print(f"{done / elapsed:,.0f} hashes/s, digest {digest.hex()[:12]}")
                done, since = 0, time.monotonic()
        self.log.info("cruncher stopped")
