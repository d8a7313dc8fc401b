"""The control plane (issue 12): `tuisup ps`, a round trip, a restart, 20 followers, attach.

    uv run python bench/control.py [--cases ps,roundtrip,restart,followers,attach]

Every host is `tuisup up -d` in a fresh folder (the command users run), stopped with
`tuisup down`; every client is the `tuisup` command or a RemoteHost, as users have them.

1. ps: `tuisup ps` from a shell against 100 services, wall time (median and p90 of 20), and
   the client's imports (`-X importtime`): their sum, and that no anyio or Textual is among.
2. roundtrip: a `snapshot` request of 100 services over the socket, from a connected
   client, with the views decoded (p50 / p99 of 2,000).
3. restart: `tuisup restart web` from a shell until its new process runs, and the engine's
   share of it: `stopping` → `running` in the host's own events (medians of 20).
4. followers: 20 `tuisup logs -f flood` while `flood` writes 50,000 lines/s: another
   service's crash → running again (its quiet figure first), the host's RSS, and every
   follower's lines checked: a line missing without a mark before it is a loss.
5. attach: `tuisup attach` on a pseudo-terminal to a 100-service host, until its first
   frame (the footer) has been written (median of 5).
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import pty
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMAND = str(ROOT / ".venv" / "bin" / "tuisup")
sys.path.insert(0, str(ROOT))

from tuisup.control.client import RemoteHost  # noqa: E402
from tuisup.model import ServiceState  # noqa: E402
from tuisup.model import events as ev  # noqa: E402

WRITER = """
import sys, time
rate, seconds = int(sys.argv[1]), float(sys.argv[2])
out = sys.stdout
n, start = 0, time.monotonic()
while (elapsed := time.monotonic() - start) < seconds:
    due = int(elapsed * rate)
    if n < due:
        out.write("".join(f"{i} " + "x" * 40 + "\\n" for i in range(n, due)))
        out.flush()
        n = due
    time.sleep(0.002)
print(f"done {n}", flush=True)
"""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COMMAND, *args], cwd=cwd, capture_output=True, text=True, check=True)


def sleepers(count: int) -> str:
    return "".join(f'[services.s{i:03d}]\ncommand = "sleep {1000 + i}"\n' for i in range(count))


@contextmanager
def host(manifest: str) -> Iterator[Path]:
    """A folder with `manifest` and a host running it (`up -d`), stopped at the end."""
    with tempfile.TemporaryDirectory(prefix="tsb-", dir="/tmp") as folder:
        where = Path(folder)
        (where / "services.toml").write_text(manifest)
        subprocess.run([COMMAND, "up", "-d"], cwd=where, capture_output=True, check=False)
        try:
            yield where
        finally:
            subprocess.run([COMMAND, "down"], cwd=where, capture_output=True, check=False)


def socket_of(folder: Path) -> Path:
    return folder / ".tuisup" / "tuisup.sock"


# -- 1. ps -----------------------------------------------------------------------------------


def bench_ps(runs: int) -> None:
    with host(sleepers(100)) as folder:
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            run("ps", cwd=folder)
            times.append(time.perf_counter() - t0)
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "tuisup", "ps"],
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
        )
    imports = 0
    modules = []
    for line in done.stderr.splitlines():
        found = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if found:
            modules.append(found.group(3))
            if not found.group(2).strip(" ") and len(found.group(2)) == 1:
                imports += int(found.group(1))
    heavy = sorted({m.split(".")[0] for m in modules} & {"anyio", "textual", "psutil"})
    engine = [m for m in modules if m.startswith("tuisup.engine")]
    print(
        f"ps, 100 services: {ms(statistics.median(times))} median, "
        f"{ms(percentile(times, 0.9))} p90 (of {runs}); its imports {imports / 1000:.1f} ms "
        f"({len(modules)} modules; anyio/Textual/psutil: {heavy or 'none'}; "
        f"engine: {engine or 'none'})"
    )


# -- 2. a round trip ---------------------------------------------------------------------


async def roundtrips(folder: Path, count: int) -> tuple[list[float], list[float]]:
    """A `snapshot` request's answer as JSON, and as views, as `tuisup ps` asks for it (its
    table needs no manifest tables: `spec: false`)."""
    remote = await RemoteHost.connect(socket_of(folder), mirror=False)
    raw, views = [], []
    for _ in range(count):
        t0 = time.perf_counter()
        answer = await remote.request("snapshot", spec=False)
        t1 = time.perf_counter()
        read = await remote.views(spec=False)
        views.append(time.perf_counter() - t1)
        raw.append(t1 - t0)
    assert len(answer["services"]) == len(read) == 100
    await remote.close()
    return raw, views


def bench_roundtrip(count: int) -> None:
    with host(sleepers(100)) as folder:
        raw, views = asyncio.run(roundtrips(folder, count))
    print(
        f"snapshot round trip, 100 services: the answer's JSON p50 {ms(percentile(raw, 0.5))}, "
        f"p99 {ms(percentile(raw, 0.99))}; read as views p50 {ms(percentile(views, 0.5))}, "
        f"p99 {ms(percentile(views, 0.99))} (of {count} each)"
    )


# -- 3. restart ------------------------------------------------------------------------------


async def engine_shares(folder: Path, runs: int) -> tuple[list[float], list[float]]:
    """CLI restarts' wall times, and each one's stopping → running in the host's events."""
    remote = await RemoteHost.connect(socket_of(folder), mirror=False)
    subscription = await remote.subscribe(services=["web"])
    walls, shares = [], []
    events = aiter(subscription)
    for _ in range(runs):
        t0 = time.perf_counter()
        await asyncio.to_thread(run, "restart", "web", cwd=folder)
        walls.append(time.perf_counter() - t0)
        stopping = None
        while True:
            batch = await anext(events)
            for event in batch:
                if isinstance(event, ev.StateChanged) and event.state is ServiceState.STOPPING:
                    stopping = event.ts
                if isinstance(event, ev.StateChanged) and event.state is ServiceState.RUNNING:
                    assert stopping is not None
                    shares.append(event.ts - stopping)
                    break
            else:
                continue
            break
    await remote.close()
    return walls, shares


def bench_restart(runs: int) -> None:
    with host('[services.web]\ncommand = "sleep 1000"\n') as folder:
        walls, shares = asyncio.run(engine_shares(folder, runs))
    print(
        f"tuisup restart web, until it runs again: {ms(statistics.median(walls))} median "
        f"(p90 {ms(percentile(walls, 0.9))}); the engine's share, stopping -> running: "
        f"{ms(statistics.median(shares))} median (p90 {ms(percentile(shares, 0.9))})"
    )


# -- 4. followers ----------------------------------------------------------------------------

FOLLOWED = """
[services.flood]
command = ["{python}", "-c", '''{writer}''', "{rate}", "{seconds}"]
autostart = false
restart = "never"

[services.crasher]
command = "sh -c 'sleep 0.3; exit 1'"
backoff = "immediate"
max_restarts = 100000
restart_window = 1
"""


async def crash_restarts(folder: Path, seconds: float) -> list[float]:
    """crasher's exit → running again, from the host's events, for `seconds`."""
    remote = await RemoteHost.connect(socket_of(folder), mirror=False)
    subscription = await remote.subscribe(services=["crasher"])
    found: list[float] = []
    exited = None
    deadline = time.monotonic() + seconds
    async for batch in subscription:
        for event in batch:
            if not isinstance(event, ev.StateChanged):
                continue
            if event.state is ServiceState.BACKOFF:
                exited = event.ts
            elif event.state is ServiceState.RUNNING and exited is not None:
                found.append(event.ts - exited)
        if time.monotonic() > deadline:
            break
    await remote.close()
    return found


class Follower:
    """`tuisup logs -f flood`, its lines checked as they come: gaps need a mark before them."""

    def __init__(self, folder: Path) -> None:
        self.proc = subprocess.Popen(
            [COMMAND, "logs", "-f", "flood"], cwd=folder, stdout=subprocess.PIPE
        )
        self.lines = 0
        self.marks = 0
        self.unmarked = 0
        self.last = -1
        self._marked = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace")
            if line.startswith("[tuisup:") or "[tuisup:" in line:
                self.marks += 1
                self._marked = True
                continue
            found = re.match(r"flood \| (\d+) ", line)
            if not found:
                continue
            number = int(found.group(1))
            self.lines += 1
            if number != self.last + 1 and not self._marked:
                self.unmarked += 1
            self.last, self._marked = number, False


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def bench_followers(seconds: float, rate: int, clients: int) -> None:
    manifest = FOLLOWED.format(python=sys.executable, writer=WRITER, rate=rate, seconds=seconds)
    with host(manifest) as folder:
        hello = asyncio.run(_hello(folder))
        quiet = asyncio.run(crash_restarts(folder, seconds))
        quiet_rss = rss(hello)
        followers = [Follower(folder) for _ in range(clients)]
        time.sleep(1.0)  # let them connect and print the (empty) history
        run("start", "flood", cwd=folder)
        peak = [quiet_rss]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.2):
                peak.append(rss(hello))

        threading.Thread(target=sample, daemon=True).start()
        loaded = asyncio.run(crash_restarts(folder, seconds))
        time.sleep(2.0)  # the followers drain what they hold
        sampling.set()
        after = rss(hello)
        for follower in followers:
            follower.proc.terminate()
            follower.proc.wait()
            follower.thread.join(5)
    q, loaded_median = statistics.median(quiet), statistics.median(loaded)
    print(
        f"crash -> running again: quiet {ms(q)} median (of {len(quiet)}); with {clients} "
        f"followers of {rate:,} lines/s: {ms(loaded_median)} median, "
        f"p90 {ms(percentile(loaded, 0.9))} (of {len(loaded)}): {loaded_median / q:.2f}x"
    )
    total = rate * seconds
    got = [f.lines for f in followers]
    print(
        f"host RSS: {quiet_rss / 2**20:.1f} MiB quiet, {max(peak) / 2**20:.1f} MiB at most, "
        f"{after / 2**20:.1f} MiB after; followers got {min(got):,}-{max(got):,} of "
        f"{total:,.0f} lines, {sum(f.marks for f in followers)} marks, "
        f"{sum(f.unmarked for f in followers)} gaps without a mark"
    )


async def _hello(folder: Path) -> int:
    remote = await RemoteHost.connect(socket_of(folder), mirror=False)
    pid = remote.pid
    await remote.close()
    assert pid is not None
    return pid


# -- 5. attach -------------------------------------------------------------------------------


def first_frame(folder: Path) -> float:
    """From starting `tuisup attach` on a pseudo-terminal to its footer on the screen."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [COMMAND, "attach"],
        cwd=folder,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**env, "TERM": "xterm-256color"},
        start_new_session=True,
    )
    os.close(slave)
    screen = b""
    while b"Detach" not in screen:
        screen = screen[-200:] + os.read(master, 65536)
    took = time.perf_counter() - t0
    os.write(master, b"q")
    try:
        while os.read(master, 65536):
            pass
    except OSError:
        pass
    proc.wait(10)
    os.close(master)
    return took


def bench_attach(runs: int) -> None:
    with host(sleepers(100)) as folder:
        times = [first_frame(folder) for _ in range(runs)]
    print(
        f"attach to 100 services, first frame: {ms(statistics.median(times))} median "
        f"(max {ms(max(times))}, of {runs})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="ps,roundtrip,restart,followers,attach")
    parser.add_argument("--seconds", type=float, default=10.0, help="of each followers phase")
    parser.add_argument("--rate", type=int, default=50_000, help="lines/s of the flood")
    parser.add_argument("--clients", type=int, default=20)
    options = parser.parse_args()
    cases = options.cases.split(",")
    if "ps" in cases:
        bench_ps(20)
    if "roundtrip" in cases:
        bench_roundtrip(2000)
    if "restart" in cases:
        bench_restart(20)
    if "followers" in cases:
        bench_followers(options.seconds, options.rate, options.clients)
    if "attach" in cases:
        bench_attach(5)


if __name__ == "__main__":
    main()
