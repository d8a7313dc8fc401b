"""A listener that never reads, during a burst of 10,000 events a second, over a real Host."""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from tests.conftest import wait_event, wait_until
from tuisup.engine import Host, ServiceState
from tuisup.engine.events import Event, Output, StateChanged
from tuisup.spec import BackoffKind, Listen, Manifest

S = ServiceState
RATE = 10_000
"""Events a second during the burst."""
SECONDS = 3
TICK = 0.01

COUNTER = """
import json, sys

got = {"events": 0, "missed": 0, "snapshots": 0, "bad": 0, "disorder": 0, "first": None}
last = 0
for line in sys.stdin:
    try:
        event = json.loads(line)
    except ValueError:
        got["bad"] += 1
        continue
    kind, seq = event["event"], event["seq"]
    # Events come in order; a snapshot covers every event up to its own seq.
    if seq < last or (seq == last and kind != "snapshot"):
        got["disorder"] += 1
    last = seq
    if kind == "snapshot":
        got["snapshots"] += 1
        got["first"] = got["first"] or seq
    elif kind == "missed":
        got["missed"] += event["count"]
    else:
        got["events"] += 1
        if kind == "state" and event["service"] == "burst" and event["state"] == "stopped":
            print(json.dumps({**got, "last": seq}), flush=True)
"""


class Wanted:
    """Counts the events a listener asks for, in little memory: the host's is measured."""

    def __init__(self) -> None:
        self.early: list[int] = []
        """The seqs of the first ones (its first snapshot comes among them)."""
        self.count = 0
        self.at_stop = 0
        """How many there were up to `burst` stopped (the listener's last line)."""

    def add(self, event: Event) -> None:
        self.count += 1
        if len(self.early) < 1000:
            self.early.append(event.seq)
        if isinstance(event, StateChanged) and event.service == "burst":
            if event.state is S.STOPPED:
                self.at_stop = self.count

    def between(self, first: int, last: int) -> int:
        """How many came after seq `first`, up to `burst` stopped at seq `last`."""
        assert first < self.early[-1]
        return self.at_stop - sum(seq <= first for seq in self.early)


def rss() -> int:
    """This process's resident memory, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def burst(host: Host, count: int, rate: float) -> int:
    """Have `burst` print `count` lines, one event each, at `rate` a second; return max RSS.

    The lines go through the real log store and bus, as if read from its pipe one by one.
    """
    per_tick = max(1, int(rate * TICK))
    most = rss()
    start = anyio.current_time()
    for tick in range(0, count, per_tick):
        for i in range(tick, min(count, tick + per_tick)):
            host.store.add("burst", "stdout", [f"burst line {i}"])
        most = max(most, rss())
        await anyio.sleep_until(start + (tick + per_tick) / rate)
    return most


async def test_a_listener_that_never_reads_during_a_burst_costs_the_host_a_bounded_queue(
    tmp_path: Path, make_manifest: Callable[..., Manifest]
) -> None:
    """The host's RSS stays flat, every event is delivered or counted, restarts go on."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    (tmp_path / "count.py").write_text(textwrap.dedent(COUNTER))
    listen = Listen(kinds=("output", "state"), services=("burst", "crasher"))
    manifest = make_manifest(
        burst="exec sleep 60",
        crasher=(
            "sleep 0.2; exit 1",
            {"backoff": BackoffKind.IMMEDIATE, "max_restarts": 1000},
        ),
        # It reads nothing until the gate opens, after the burst.
        deaf=(f"read g < {gate}; exec {sys.executable} -u count.py", {"listen": listen}),
    )
    wanted = Wanted()
    restarts: list[float] = []
    host = Host(manifest, watch=False)
    subscription = await host.subscribe()

    async def follow() -> None:
        """Count what the listener asks for, and time the crasher's restarts."""
        exited = 0.0
        async for batch in subscription:
            for event in batch:
                service = getattr(event, "service", None)
                if listen.wants(event.kind, service):
                    wanted.add(event)
                if isinstance(event, StateChanged) and service == "crasher":
                    if event.state is S.BACKOFF:
                        exited = event.ts
                    elif event.state is S.RUNNING and exited:
                        restarts.append(event.ts - exited)

    async with host, anyio.create_task_group() as tg:
        tg.start_soon(follow)
        await wait_until(host, lambda s: s["deaf"].state is S.RUNNING)
        # Fill the bus's ring first, as any long run has: what it keeps is not the listener's.
        await burst(host, host.bus.capacity, rate=RATE * 10)
        gc.collect()
        before, during = rss(), len(restarts)
        most = await burst(host, RATE * SECONDS, rate=RATE)
        growth = most - before
        await host.stop("burst")
        after = host.bus.last_seq
        await anyio.to_thread.run_sync(gate.write_text, "go\n")
        line = await wait_event(
            host, lambda e: isinstance(e, Output) and e.service == "deaf", after, timeout=30
        )
        [said] = host.lines_inline([line])
        assert isinstance(said, Output) and said.lines
        got: dict[str, Any] = json.loads(said.lines[0])
        tg.cancel_scope.cancel()
    # Keeping the burst's events for it would cost 5.5 MiB here; a bounded queue, 0.1 MiB.
    assert growth < 2 * 2**20, f"the host grew by {growth / 2**20:.1f} MiB"
    assert (got["bad"], got["disorder"]) == (0, 0), got
    assert got["missed"] > RATE * SECONDS / 2, got
    assert got["snapshots"] >= 2, got
    # Every event it asked for reached it, or was counted in a `missed` line.
    expected = wanted.between(got["first"], got["last"])
    assert got["events"] + got["missed"] == expected, got
    # The crasher went on restarting at its pace through the burst.
    during_burst = restarts[during:]
    assert len(during_burst) >= SECONDS * 2, restarts
    assert statistics.median(during_burst) < 0.1, during_burst
