"""Provides a timing of the log-file write path: chunks and single lines through a StreamSink.

Measures what writing a service's output costs in tuisup itself, without a process or a
pipe: 500,000 lines of 100 bytes fed to one `StreamSink` in 64 KiB chunks (what a pipe
flood reads), then one line per write (what an in-process service printing line by line
costs), then one line per write while the file cannot be written (its folder is a file).
Prints the median of several runs, in seconds, and nanoseconds per line.

    uv run python bench/logfile.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from tuisup.engine.logs import LogStore, StreamSink
from tuisup.spec import LogFormat, LogOptions

LINES = 500_000
LINE = b"%08d " + b"x" * 90 + b"\n"
CHUNK = 65_536


def _data() -> bytes:
    return b"".join(LINE % i for i in range(LINES))


def _time(folder: Path, pieces: list[bytes]) -> float:
    store = LogStore(10_000, folder, lambda batch: None)
    # The bytes as written, one file: what this path cost before times and rotation (those
    # are measured by bench/logs.py).
    store.configure("svc", LogOptions(max_bytes=0, format=LogFormat.RAW))
    failing = folder.is_file()
    sink = StreamSink(store, "svc", "stdout")
    started = time.perf_counter()
    for piece in pieces:
        sink.write(piece)
    sink.close()
    took = time.perf_counter() - started
    store.close()
    if not failing:
        (folder / "svc.log").unlink()
    return took


def main() -> None:
    """Time both shapes of writes and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per shape (default 7)")
    runs = parser.parse_args().runs
    data = _data()
    shapes = {
        "64 KiB chunks": [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)],
        "one line per write": data.splitlines(keepends=True),
    }
    with tempfile.TemporaryDirectory() as tmp:
        blocked = Path(tmp) / "blocked"
        blocked.write_text("")
        runs_of = [(name, Path(tmp), pieces) for name, pieces in shapes.items()]
        runs_of.append(("one line, failing", blocked, shapes["one line per write"]))
        for name, folder, pieces in runs_of:
            median = statistics.median(_time(folder, pieces) for _ in range(runs))
            print(f"{name:20} {median:.3f} s  {median / LINES * 1e9:6.0f} ns/line")  # noqa: T201


if __name__ == "__main__":
    main()
