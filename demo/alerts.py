"""A listener: it reads tuisup's events on its stdin and says what they mean, in its log.

services.toml gives it `listen = { kinds = ["state", "health"], services = ["flaky", "db"] }`,
so its stdin gets a `snapshot` of flaky and db first, then one JSON event per line, as
`tuisup --no-tui --json` prints them. Reading lines is all it does; a real one might page
someone, or call an API, where this one prints.
"""

import json
import sys
from collections.abc import Iterator


def react(event: dict) -> Iterator[str]:
    """What one event means, if anything."""
    match event:
        case {"event": "snapshot", "services": services}:
            now = ", ".join(f"{s['service']} {s['state']}" for s in services)
            yield f"watching: {now}"
        case {"event": "missed", "count": count}:
            yield f"missed {count} events; the snapshot that follows tells where things stand"
        case {"event": "state", "service": "flaky", "state": "backoff", "exit_code": code}:
            ran, again = event["runtime"], event["restarts"] + 1
            yield f"flaky crashed with exit code {code} after {ran:.1f}s: restart {again} coming"
        case {"event": "state", "service": "flaky", "state": "failed", "reason": reason}:
            yield f"flaky failed for good: {reason}"
        case {"event": "health", "service": "db", "health": "healthy"}:
            yield "db is healthy: migrate and api can start"
        case {"event": "health", "service": "db", "health": "unhealthy", "reason": reason}:
            yield f"db is unhealthy: {reason}"


def main() -> None:
    for line in sys.stdin:
        for text in react(json.loads(line)):
            print(text, flush=True)


main()
