"""In-process output: bounded, in order, and never a deadlock (real loop, threads and files)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import anyio

from tests.conftest import untimed
from tuisup.engine.capture import PENDING_MAX, ServiceOutput
from tuisup.engine.logs import LogBatch, LogStore
from tuisup.spec import LogOptions

LINES = 20_000


def line(n: int) -> bytes:
    return f"{n:05d} ".encode() + b"x" * 1017 + b"\n"  # 1 KiB


def make_output(tmp_path: Path, batches: list[LogBatch]) -> ServiceOutput:
    store = LogStore(100, tmp_path / "logs", batches.append)
    store.configure("w", LogOptions(max_bytes=0))  # every line stays in the one file
    return ServiceOutput(store, "w", asyncio.get_running_loop())


def hold_the_loop(seconds: float) -> None:
    """Block the calling (loop) thread: what a busy loop, or a blocking service, does."""
    time.sleep(seconds)


def logged(tmp_path: Path) -> list[str]:
    return untimed((tmp_path / "logs" / "w.log").read_text().splitlines())


class Writer:
    """A thread writing LINES lines of 1 KiB, optionally each under a lock."""

    def __init__(self, output: ServiceOutput, lock: threading.Lock | None = None) -> None:
        self.output = output
        self.lock = lock or threading.Lock()
        self.written = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for n in range(LINES):
            with self.lock:
                self.output.write("stdout", line(n))
            self.written += 1

    async def join(self) -> None:
        await anyio.to_thread.run_sync(self.thread.join, 10.0)
        assert not self.thread.is_alive()


async def test_a_thread_that_outwrites_a_blocked_loop_waits_instead_of_growing_the_buffer(
    tmp_path: Path,
) -> None:
    """Issue 9: the buffer of output waiting for the loop grew without bound."""
    batches: list[LogBatch] = []
    output = make_output(tmp_path, batches)
    writer = Writer(output)
    hold_the_loop(0.3)  # the stimulus: the loop is blocked, nothing takes the output
    during_block = writer.written
    began = time.monotonic()
    output.write("stderr", b"from the loop thread\n")  # never waits, whatever is pending
    assert time.monotonic() - began < 0.05
    await writer.join()
    output.close()
    # Like a full pipe: the writer waited for the loop instead of piling up 20 MiB.
    assert during_block * 1024 <= PENDING_MAX + 1024, during_block
    lines = logged(tmp_path)
    assert [x for x in lines if x.startswith("from")] == ["from the loop thread"]
    assert [x for x in lines if not x.startswith("from")] == [
        line(n).decode().rstrip("\n") for n in range(LINES)
    ]
    print(f"{LINES} lines from a thread in {len(batches)} batches")
    assert len(batches) * 20 < LINES  # a batch per loop turn, not per write


async def test_a_writer_holding_a_lock_the_loop_thread_wants_does_not_deadlock(
    tmp_path: Path,
) -> None:
    """A logging handler's lock, held by a thread waiting for room, wanted by the loop."""
    output = make_output(tmp_path, [])
    shared = threading.Lock()
    writer = Writer(output, shared)
    hold_the_loop(0.3)  # the loop is blocked: the writer fills the buffer and waits, locked
    began = time.monotonic()
    got = shared.acquire(timeout=5.0)  # in the loop thread, as a service logging would
    took = time.monotonic() - began
    if got:
        shared.release()
    assert got, "deadlock: the loop waited for a lock held by a writer waiting for the loop"
    assert took < 1.0
    await writer.join()
    output.close()
    assert len(logged(tmp_path)) == LINES


def test_a_writer_waiting_for_room_is_let_go_when_the_loop_is_gone(tmp_path: Path) -> None:
    writers: list[Writer] = []

    async def host() -> None:
        writers.append(Writer(make_output(tmp_path, [])))
        hold_the_loop(0.3)  # blocked until the loop ends: the writer is waiting for room

    asyncio.run(host())
    writers[0].thread.join(5.0)
    assert not writers[0].thread.is_alive(), "a writer waits forever for a loop that is gone"
