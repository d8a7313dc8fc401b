"""Where a crash → restart's time goes in `tuisup --no-tui`: the printer on, its events timed.

    uv run python bench/restart.py                  # 30 kills of 5 `sleep` services
    uv run python bench/restart.py --kills 60 --text

Runs `tuisup --no-tui --json` (or plain text with --text: then only the /proc figure) with 5
services restarted at once, SIGKILLs one every 50 ms, and reports medians from the kill to:
the exit handled (the `backoff` event's time), the new run `running` (its spawn returned) and
the new process seen in /proc (polled every 0.2 ms, as bench/compare.py does).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMAND = ROOT / ".venv" / "bin" / "tuisup"
BASE = 2_000_000


def sleeps(token: bytes) -> dict[int, bytes]:
    """{pid: argument} of the live `sleep BASE+k` processes that carry `token`."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if len(argv) < 2 or not argv[0].endswith(b"sleep") or not argv[1].startswith(b"2"):
                continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                if token not in f.read():
                    continue
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] != b"Z":
            found[int(entry)] = argv[1]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--text", action="store_true", help="text output instead of --json")
    parser.add_argument("--command", type=Path, default=COMMAND, help="another tuisup command")
    options = parser.parse_args()
    token = os.urandom(8).hex()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env |= {"PYTHONPYCACHEPREFIX": str(ROOT / "bench" / ".peers" / "pycache"), "BENCH": token}
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "services.toml"
        manifest.write_text(
            "".join(
                f'[services.s{k}]\ncommand = ["sleep", "{BASE + k}"]\nrestart = "always"\n'
                'backoff = "immediate"\nmax_restarts = 10000\n\n'
                for k in range(5)
            )
        )
        out = Path(tmp) / "out.txt"
        mode = ["--no-tui"] if options.text else ["--no-tui", "--json"]
        with open(out, "wb") as stdout:
            tuisup = subprocess.Popen(
                [str(options.command), *mode, "-f", str(manifest)],
                stdout=stdout,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        needle = f"BENCH={token}".encode()
        try:
            while len(sleeps(needle)) < 5:
                time.sleep(0.001)
            time.sleep(0.5)
            killed, seen = [], []
            for k in range(options.kills):
                pid, arg = sorted(sleeps(needle).items())[k % 5]
                time.sleep(0.05)
                killed.append(time.time())
                t0 = time.perf_counter()
                os.kill(pid, signal.SIGKILL)
                while not any(a == arg and p != pid for p, a in sleeps(needle).items()):
                    time.sleep(0.0002)
                seen.append((time.perf_counter() - t0) * 1000)
        finally:
            tuisup.send_signal(signal.SIGTERM)
            tuisup.wait(30)
        print(f"{options.kills} kills: new process in /proc after {statistics.median(seen):.2f} ms")
        if not options.text:
            report(out, killed)


def report(out: Path, killed: list[float]) -> None:
    events = [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]
    states = [e for e in events if e["event"] == "state"]
    for label, state in (("exit handled (backoff)", "backoff"), ("respawned (running)", "running")):
        gaps = []
        for t in killed:
            event = next((e for e in states if e["ts"] >= t and e["state"] == state), None)
            if event is not None:
                gaps.append((event["ts"] - t) * 1000)
        print(f"  kill → {label}: {statistics.median(gaps):.2f} ms (median of {len(gaps)})")


if __name__ == "__main__":
    main()
