"""Benchmark tuisup --no-tui against supervisord, honcho, circus, PM2 and mprocs on the same work.

    uv run python bench/compare.py                  # everything (just bench)
    uv run python bench/compare.py --quick          # fewer repetitions, 5 s of idle
    uv run python bench/compare.py --only restart   # one scenario (or a comma list)
    uv run python bench/compare.py --tools tuisup,floor --only startup,stop

The Python peers are installed into a throwaway venv, bench/.peers/ (git-ignored), on first
use; PM2 and mprocs (optional, like circus) with npm into bench/.peers/npm. PM2 runs as
`pm2-runtime` (its foreground mode, PM2_HOME in the run's folder); mprocs, a terminal UI, runs
on a pseudo-terminal and is stopped with its `q` key (SIGTERM would leave its processes).
Every manager is launched with `BENCH_TOKEN=<uuid>` in its environment, which its children
inherit: processes are found (and, after each measurement, killed) by that token, read from
/proc/PID/environ, never by name alone. Service processes are the `sleep ARG` processes that
carry the token, seen in /proc, never taken from a manager's own output.

The floor is a bare Python program that spawns the same processes with subprocess.Popen
(and, for the restart, stop and idle rows, respawns them from an os.wait() loop and forwards
SIGTERM); for the log ingest it is the writer with its stdout going straight to the file.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import pty
import re
import resource
import shutil
import signal
import statistics
import string
import struct
import subprocess
import sys
import tempfile
import termios
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "bench" / ".peers"
NPM_BIN = PEERS / "npm" / "node_modules" / ".bin"
TUISUP_COMMAND = ROOT / ".venv" / "bin" / "tuisup"

TOKEN_VAR = "BENCH_TOKEN"
MIB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")
POLL = 0.001
"""Seconds between two looks at /proc (or at a log file) while waiting."""
FAST_POLL = 0.0002
"""Seconds between two looks at /proc while waiting for a restart."""
SLEEP_BASE = 1_000_000
"""Service k runs `sleep SLEEP_BASE+k`: distinct arguments, so each service is recognisable."""
SETTLE = 2.0
"""Seconds to let a manager settle after its services are up, before measuring it idle."""

INGEST_LINES = 500_000
LINE_BYTES = 100
_LETTERS = (string.ascii_letters * 3).encode()

WRITER = """\
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
while True:
    chunk = os.read(fd, 1 << 20)
    if not chunk:
        break
    view = memoryview(chunk)
    while view:
        view = view[os.write(1, view):]
time.sleep(3600)
"""
"""The log-ingest service: copies the prepared lines to stdout in 1 MiB chunks, then idles."""

FLOOR = """\
import os, signal, subprocess, sys

class Stop(Exception):
    pass

def stop(signum, frame):
    raise Stop

signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
procs = {}
try:
    for arg in sys.argv[1:]:
        p = subprocess.Popen(["sleep", arg])
        procs[p.pid] = (arg, p)
    while True:
        pid, _ = os.wait()
        arg, _ = procs.pop(pid)
        p = subprocess.Popen(["sleep", arg])
        procs[p.pid] = (arg, p)
except Stop:
    for _, p in procs.values():
        p.terminate()
    for _, p in procs.values():
        p.wait()
"""
"""The floor: a bare Popen loop, then respawn on exit and forward SIGTERM; nothing else."""


class Failed(Exception):
    """A measurement could not be made (the manager exited, or a wait timed out)."""


# -- /proc --------------------------------------------------------------------------------


def proc_pids() -> set[int]:
    return {int(name) for name in os.listdir("/proc") if name.isdigit()}


def read_proc(pid: int, name: str) -> bytes:
    """Return the whole of /proc/PID/NAME, or b"" if the process is gone or unreadable."""
    try:
        fd = os.open(f"/proc/{pid}/{name}", os.O_RDONLY)
    except OSError:
        return b""
    try:
        parts = []
        while chunk := os.read(fd, 65536):
            parts.append(chunk)
        return b"".join(parts)
    except OSError:
        return b""
    finally:
        os.close(fd)


def alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    raw = read_proc(pid, "stat")
    return bool(raw) and raw[raw.rfind(b")") + 2 : raw.rfind(b")") + 3] != b"Z"


def needle(token: str) -> bytes:
    return f"{TOKEN_VAR}={token}".encode()


def tagged(token: str) -> list[int]:
    """Every live process (but this one) whose environment carries `token`."""
    mark, me = needle(token), os.getpid()
    return [p for p in proc_pids() if p != me and mark in read_proc(p, "environ")]


def rss_mib(pid: int) -> float:
    raw = read_proc(pid, "statm").split()
    return int(raw[1]) * PAGE / MIB if len(raw) > 1 else 0.0


def pss_mib(pid: int) -> float:
    """Proportional set size: shared pages count once across the processes sharing them."""
    for line in read_proc(pid, "smaps_rollup").splitlines():
        if line.startswith(b"Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def thread_switches(pid: int) -> dict[int, int]:
    """Voluntary + involuntary context switches of each thread of `pid`."""
    out: dict[int, int] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        total = 0
        for line in read_proc(pid, f"task/{tid}/status").splitlines():
            if line.startswith((b"voluntary_ctxt_switches", b"nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
        out[int(tid)] = total
    return out


def thread_cpu_ns(pid: int) -> int:
    """Nanoseconds on CPU summed over the live threads of `pid` (schedstat; 0 if missing)."""
    total = 0
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            raw = read_proc(pid, f"task/{tid}/schedstat").split()
            total += int(raw[0]) if raw else 0
    return total


def kill_tagged(token: str, timeout: float = 10.0) -> int:
    """SIGKILL every process carrying `token` until none is left; return how many survived."""
    deadline = time.perf_counter() + timeout
    while True:
        left = [p for p in tagged(token) if alive(p)]
        if not left or time.perf_counter() > deadline:
            return len(left)
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


class Scanner:
    """Finds the processes of one run that `match` recognises and that carry its token.

    `match` gets a process's argv and returns its key (for a sleep: its argument) or None.
    Processes that existed before the run are skipped (until their pid disappears: pids are
    reused), and a process already recognised is not read again, so a scan is cheap.
    """

    def __init__(self, token: str, match: Callable[[list[bytes]], bytes | None]) -> None:
        self.needle = needle(token)
        self.match = match
        self.before = proc_pids()
        self.found: dict[int, bytes] = {}

    def scan(self) -> dict[int, bytes]:
        """Return {pid: key} of the processes seen now (zombies may linger)."""
        pids = proc_pids()
        self.before &= pids
        for pid in [p for p in self.found if p not in pids]:
            del self.found[pid]
        for pid in pids - self.before - self.found.keys():
            key = self.match(read_proc(pid, "cmdline").split(b"\0"))
            if key is not None and self.needle in read_proc(pid, "environ"):
                self.found[pid] = key
        return self.found

    def count(self) -> int:
        return len(set(self.scan().values()))


# -- runs -----------------------------------------------------------------------------------

MANAGER_ENV: dict[str, str] = dict(os.environ)
"""The environment every manager (and the floor) starts with; see `manager_env`."""

ACTIVE: set[str] = set()
"""Tokens of runs not yet cleaned up: killed in main's `finally` whatever happens."""


class Run:
    """One launch of a manager, with its own token, folder and cleanup."""

    counter = 0

    def __init__(self, base: Path, tool: str) -> None:
        Run.counter += 1
        self.token = uuid.uuid4().hex
        self.dir = base / f"{Run.counter:03d}-{tool}"
        self.dir.mkdir()
        self.popen: subprocess.Popen[bytes] | None = None
        self.stdout = self.dir / "stdout.txt"
        self.t0 = 0.0
        self.leftovers = 0
        self.tty: int | None = None
        """The pseudo-terminal's master side, for a terminal program."""

    def __enter__(self) -> Run:
        ACTIVE.add(self.token)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def launch(
        self, argv: list[str], stdout: Path | None = None, *, env: dict[str, str] | None = None
    ) -> None:
        env = {**MANAGER_ENV, TOKEN_VAR: self.token, **(env or {})}
        self.stdout = stdout or self.stdout
        with open(self.stdout, "wb") as out:
            self.t0 = time.perf_counter()
            self.popen = subprocess.Popen(
                argv,
                cwd=self.dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def launch_on_tty(self, argv: list[str]) -> None:
        """Launch a terminal program on a pseudo-terminal whose screen is read and dropped."""
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
        env = {**MANAGER_ENV, TOKEN_VAR: self.token, "TERM": "xterm-256color"}
        self.t0 = time.perf_counter()
        try:
            self.popen = subprocess.Popen(
                argv, cwd=self.dir, env=env, stdin=slave, stdout=slave, stderr=slave,
                start_new_session=True,
            )  # fmt: skip
        finally:
            os.close(slave)
        self.tty = master
        threading.Thread(target=_drain, args=(master,), daemon=True).start()

    def check(self) -> None:
        """Raise Failed if the manager has exited."""
        if self.popen is not None and self.popen.poll() is not None:
            if self.tty is not None:
                raise Failed(f"exited with {self.popen.returncode}")
            with open(self.stdout, "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - 300))
                tail = f.read().decode(errors="replace").strip()
            raise Failed(f"exited with {self.popen.returncode}: {tail!r}")

    def close(self) -> None:
        self.leftovers = kill_tagged(self.token)
        if self.popen is not None:
            with contextlib.suppress(OSError):
                self.popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(5)
        if self.leftovers:
            progress(f"    warning: {self.leftovers} tagged processes survived SIGKILL")
        else:
            ACTIVE.discard(self.token)
        if self.tty is not None:
            with contextlib.suppress(OSError):
                os.close(self.tty)
        shutil.rmtree(self.dir, ignore_errors=True)


def _drain(fd: int) -> None:
    """Read a pseudo-terminal until it closes, so that the program never blocks writing."""
    with contextlib.suppress(OSError):
        while os.read(fd, 65536):
            pass


def wait_until(
    cond: Callable[[], bool],
    timeout: float,
    *,
    run: Run | None = None,
    interval: float = POLL,
    what: str = "wait",
) -> float:
    """Poll `cond`; return perf_counter() just after it first held (an upper bound)."""
    deadline = time.perf_counter() + timeout
    while True:
        if cond():
            return time.perf_counter()
        if run is not None:
            run.check()
        if time.perf_counter() > deadline:
            raise Failed(f"timeout ({what}, {timeout:g}s)")
        time.sleep(interval)


def sleep_args(n: int) -> list[str]:
    return [str(SLEEP_BASE + k) for k in range(1, n + 1)]


def sleep_matcher(args: list[str]) -> Callable[[list[bytes]], bytes | None]:
    """Recognise `sleep ARG` (after its exec: not a wrapper about to become it)."""
    wanted = {a.encode() for a in args}

    def match(argv: list[bytes]) -> bytes | None:
        if len(argv) > 1 and argv[0].rsplit(b"/", 1)[-1] == b"sleep" and argv[1] in wanted:
            return argv[1]
        return None

    return match


# -- the tools ----------------------------------------------------------------------------


class Tool:
    """How to run one manager: a config for N sleeps, a config for the log writer."""

    name = ""
    restarts = True
    stop_signal = signal.SIGTERM
    min_uptime = 0.0
    """Seconds a process must have run for the tool to restart it when it dies."""
    logs = True
    """Whether it writes a service's output to a file (the ingest scenario)."""

    def sleeps(self, d: Path, args: list[str], *, fast_restart: bool) -> list[str]:
        raise NotImplementedError

    def ingest(self, d: Path, writer: list[str]) -> tuple[list[str], Path, Path | None] | None:
        """Return (argv, the log file to watch, where to send the manager's stdout).

        None: the tool keeps no log file.
        """
        raise NotImplementedError

    def launch(self, run: Run, argv: list[str], stdout: Path | None = None) -> None:
        run.launch(argv, stdout)

    def stop(self, run: Run) -> None:
        """Ask the manager to stop every service and exit, as a user would."""
        os.kill(run.pid, self.stop_signal)

    def parse_log(self, line: bytes) -> bytes | None:
        """Return the service's own line from a log line; None to skip a manager's line."""
        return line


class Tuisup(Tool):
    """tuisup --no-tui, run as a user runs it: its `tuisup` command (not `python -m`)."""

    name = "tuisup"
    json = False
    """Print JSON events (`--json`) instead of text."""

    def __init__(self, root: Path = ROOT, name: str = "tuisup") -> None:
        self.command = root / ".venv" / "bin" / "tuisup"
        self.name = name

    def _argv(self, path: Path) -> list[str]:
        mode = ["--no-tui", "--json"] if self.json else ["--no-tui"]
        return [str(self.command), *mode, "-f", str(path)]

    def sleeps(self, d: Path, args: list[str], *, fast_restart: bool) -> list[str]:
        lines = ["[tuisup]", 'log_dir = "logs"']
        for arg in args:
            lines += ["", f"[services.s{arg}]", f'command = ["sleep", "{arg}"]']
            if fast_restart:
                lines += ['restart = "always"', 'backoff = "immediate"', "max_restarts = 1000"]
        (d / "services.toml").write_text("\n".join(lines) + "\n")
        return self._argv(d / "services.toml")

    def ingest(self, d: Path, writer: list[str]) -> tuple[list[str], Path, Path | None]:
        # The lines as written, in one file, as the peers keep them: no time before each line
        # and no rotation at 10 MiB (tuisup's defaults; `bench/logs.py` measures their cost).
        text = (
            f'[tuisup]\nlog_dir = "logs"\nlog_timestamps = false\nlog_max_bytes = 0\n\n'
            f"[services.w]\ncommand = {json.dumps(writer)}\n"
        )
        (d / "services.toml").write_text(text)
        return self._argv(d / "services.toml"), d / "logs" / "w.log", None


class Supervisord(Tool):
    name = "supervisord"

    def _head(self, d: Path, services: int = 1) -> str:
        # Each child closes every fd up to minfds in a Python loop before its exec: keep the
        # default (1024) unless the services need more (about 5 fds each: pipes, log files).
        return textwrap.dedent(f"""\
            [supervisord]
            nodaemon=true
            logfile={d}/supervisord.log
            pidfile={d}/supervisord.pid
            childlogdir={d}
            minfds={max(1024, 6 * services + 64)}
            """)

    def _argv(self, d: Path, text: str) -> list[str]:
        (d / "supervisord.conf").write_text(text)
        return [str(PEERS / "bin" / "supervisord"), "-n", "-c", str(d / "supervisord.conf")]

    def sleeps(self, d: Path, args: list[str], *, fast_restart: bool) -> list[str]:
        parts = [self._head(d, len(args))]
        for arg in args:
            parts.append(f"[program:s{arg}]\ncommand=sleep {arg}\n")
            if fast_restart:
                parts.append("autorestart=true\nstartsecs=0\nstartretries=1000\n")
        return self._argv(d, "\n".join(parts))

    def ingest(self, d: Path, writer: list[str]) -> tuple[list[str], Path, Path | None]:
        log = d / "w.log"
        text = self._head(d) + textwrap.dedent(f"""
            [program:w]
            command={" ".join(writer)}
            stdout_logfile={log}
            stdout_logfile_maxbytes=0
            """)
        return self._argv(d, text), log, None


class Honcho(Tool):
    name = "honcho"
    restarts = False
    PREFIX = re.compile(rb"\d\d:\d\d:\d\d (\S+) *\| (.*)")

    def _argv(self, d: Path, text: str) -> list[str]:
        (d / "Procfile").write_text(text)
        return [str(PEERS / "bin" / "honcho"), "start", "-f", str(d / "Procfile"), "--no-colour"]

    def sleeps(self, d: Path, args: list[str], *, fast_restart: bool) -> list[str]:
        return self._argv(d, "".join(f"s{arg}: sleep {arg}\n" for arg in args))

    def ingest(self, d: Path, writer: list[str]) -> tuple[list[str], Path, Path | None]:
        log = d / "honcho.out"
        return self._argv(d, f"w: {' '.join(writer)}\n"), log, log

    def parse_log(self, line: bytes) -> bytes | None:
        match = self.PREFIX.fullmatch(line)
        if match is None:
            return b"<no prefix>"  # counted as mangled
        return match[2] if match[1] == b"w.1" else None


class Circus(Tool):
    name = "circus"

    def _head(self, d: Path, check_delay: float | None = None) -> str:
        text = textwrap.dedent(f"""\
            [circus]
            endpoint = ipc://{d}/ctl.sock
            pubsub_endpoint = ipc://{d}/pub.sock
            stats_endpoint = ipc://{d}/stats.sock
            statsd = false
            """)
        if check_delay is not None:
            text += f"check_delay = {check_delay}\n"
        return text

    def _argv(self, d: Path, text: str) -> list[str]:
        (d / "circus.ini").write_text(text)
        return [str(PEERS / "bin" / "circusd"), str(d / "circus.ini")]

    def sleeps(self, d: Path, args: list[str], *, fast_restart: bool) -> list[str]:
        # circus notices a dead process only when it polls, every check_delay (1 s by default).
        parts = [self._head(d, 0.01 if fast_restart else None)]
        parts += [
            f"[watcher:s{arg}]\ncmd = sleep {arg}\ncopy_env = true\nwarmup_delay = 0\n"
            for arg in args
        ]
        return self._argv(d, "\n".join(parts))

    def ingest(self, d: Path, writer: list[str]) -> tuple[list[str], Path, Path | None]:
        log = d / "w.log"
        text = self._head(d) + textwrap.dedent(f"""
            [watcher:w]
            cmd = {" ".join(writer)}
            copy_env = true
            stdout_stream.class = FileStream
            stdout_stream.filename = {log}
            """)
        return self._argv(d, text), log, None


class PM2(Tool):
    name = "pm2"
    stop_signal = signal.SIGINT

    def _app(self, name: str, script: str, args: list[str], **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "script": script,
            "args": args,
            "interpreter": "none",
            "autorestart": True,
            "min_uptime": 0,
            "max_restarts": 1000,
            "restart_delay": 0,
            **extra,
        }

    def _argv(self, d: Path, apps: list[dict[str, Any]]) -> list[str]:
        (d / "ecosystem.config.js").write_text(f"module.exports = {json.dumps({'apps': apps})};\n")
        return [str(NPM_BIN / "pm2-runtime"), "start", str(d / "ecosystem.config.js")]

    def launch(self, run: Run, argv: list[str], stdout: Path | None = None) -> None:
        run.launch(argv, stdout, env={"PM2_HOME": str(run.dir / "pm2")})

    def sleeps(self, d: Path, args: list[str], *, fast_restart: bool) -> list[str]:
        return self._argv(d, [self._app(f"s{arg}", "sleep", [arg]) for arg in args])

    def ingest(self, d: Path, writer: list[str]) -> tuple[list[str], Path, Path | None]:
        log = d / "w.log"
        app = self._app("w", writer[0], writer[1:], out_file=str(log), merge_logs=True)
        return self._argv(d, [app]), log, None


class Mprocs(Tool):
    name = "mprocs"
    min_uptime = 1.5  # it does not restart a process that died within 1 s of its start (+ margin)
    logs = False  # its output stays in its screen

    def sleeps(self, d: Path, args: list[str], *, fast_restart: bool) -> list[str]:
        procs = {f"s{arg}": {"cmd": ["sleep", arg], "autorestart": True} for arg in args}
        (d / "mprocs.yaml").write_text(json.dumps({"procs": procs}))  # JSON is YAML
        return [str(NPM_BIN / "mprocs"), "--config", str(d / "mprocs.yaml")]

    def ingest(self, d: Path, writer: list[str]) -> None:
        return None

    def launch(self, run: Run, argv: list[str], stdout: Path | None = None) -> None:
        run.launch_on_tty(argv)

    def stop(self, run: Run) -> None:
        assert run.tty is not None
        os.write(run.tty, b"q")


class Floor(Tool):
    name = "floor"

    def __init__(self, script: Path) -> None:
        self.script = script

    def sleeps(self, d: Path, args: list[str], *, fast_restart: bool) -> list[str]:
        return [sys.executable, str(self.script), *args]

    def ingest(self, d: Path, writer: list[str]) -> tuple[list[str], Path, Path | None]:
        return writer, d / "w.log", d / "w.log"


# -- results --------------------------------------------------------------------------------


@dataclass
class Row:
    key: str
    label: str
    unit: str = ""
    digits: int = 0
    target: str = ""
    met: Callable[[dict[str, Any]], bool] | None = None
    floor_ratio: bool = False
    ratios: bool = True


@dataclass
class Results:
    values: dict[tuple[str, str], Any] = field(default_factory=dict)
    samples: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def put(self, row: str, tool: str, value: Any) -> None:
        self.values[row, tool] = value

    def keep(self, row: str, tool: str, samples: list[float]) -> None:
        self.samples[row, tool] = samples


def _below(limit: float) -> Callable[[dict[str, Any]], bool]:
    return lambda v: isinstance(v.get("tuisup"), float | int) and v["tuisup"] < limit


def _within_floor(v: dict[str, Any]) -> bool:
    tui, floor = v.get("tuisup"), v.get("floor")
    return isinstance(tui, float) and isinstance(floor, float) and tui <= 2 * floor


def _clean(v: dict[str, Any]) -> bool:
    return v.get("tuisup") == (0, 0, 0)


def rows(idle_seconds: float) -> list[Row]:
    idle = f"{idle_seconds:g} s"
    return [
        Row("start10", "startup, 10 sleeps", "ms", 0, "< 100 ms", _below(100.0), True),
        Row("start100", "startup, 100 sleeps", "ms", 0, "≤ 2× floor", _within_floor, True),
        Row("start500", "startup, 500 sleeps", "ms", 0, "≤ 2× floor", _within_floor, True),
        Row("restart50", "crash→restart, median", "ms", 2, "< 5 ms", _below(5.0), True),
        Row("restart90", "crash→restart, p90", "ms", 2, "", None, True),
        Row("idle_cpu", f"idle CPU over {idle}", "% core", 3, "< 0.1 %", _below(0.1)),
        Row("idle_wake", f"idle wake-ups over {idle}", "", 0, "0", _below(1)),
        Row("idle_rss", "idle RSS, 100 sleeps", "MiB", 1, "< 35 MiB", _below(35.0)),
        Row("idle_other", "other processes, n / PSS", "MiB", 1, "", None, ratios=False),
        Row("ingest", "ingest 500k lines", "s", 3, "< 0.2 s", _below(0.2), True),
        Row("ingest_w", "  from writer start", "s", 3, "< 0.2 s", _below(0.2), True),
        Row("ingest_ok", "lost / dup / mangled", "", 0, "0 / 0 / 0", _clean, ratios=False),
        Row("ingest_rss", "peak RSS during ingest", "MiB", 1),
        Row("stop100", "stop, 100 sleeps", "ms", 0, "< 200 ms", _below(200.0), True),
        Row("stop100_first", "  host_stopping → 1st stopped", "ms", 0, ratios=False),
        Row("stop100_last", "  host_stopping → last stopped", "ms", 0, ratios=False),
        Row("stop500", "stop, 500 sleeps", "ms", 0, "", None, True),
        Row("stop500_first", "  host_stopping → 1st stopped", "ms", 0, ratios=False),
        Row("stop500_last", "  host_stopping → last stopped", "ms", 0, ratios=False),
        Row("stop2000", "stop, 2,000 sleeps", "ms", 0, "", None, True),
        Row("stop2000_first", "  host_stopping → 1st stopped", "ms", 0, ratios=False),
        Row("stop2000_last", "  host_stopping → last stopped", "ms", 0, "< 2,000 ms", _below(2000)),
    ]


def fmt(value: Any, digits: int) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple):
        return " / ".join(fmt(v, digits) for v in value)
    if isinstance(value, float | int):
        return f"{value:,.{digits}f}"
    return str(value)


def ratio(a: Any, b: Any) -> str:
    if not isinstance(a, float | int) or not isinstance(b, float | int):
        return ""
    if b == 0:
        return "—" if a == 0 else "∞"
    return f"{a / b:.2f}×"


def table(results: Results, tools: list[str], idle_seconds: float) -> str:
    peers = [t for t in tools if t not in ("tuisup", "floor")]
    head = ["scenario", "unit", *tools]
    if "tuisup" in tools:
        head += [f"{p}/tuisup" for p in peers]
        if "floor" in tools:
            head.append("tuisup/floor")
        head += ["target (tuisup)", "met?"]
    body: list[list[str]] = []
    for row in rows(idle_seconds):
        values = {t: results.values.get((row.key, t)) for t in tools}
        if all(v is None for v in values.values()):
            continue
        cells = [row.label, row.unit] + [fmt(values[t], row.digits) or "n/a" for t in tools]
        if "tuisup" in tools:
            tui = values["tuisup"]
            cells += [ratio(values[p], tui) if row.ratios else "" for p in peers]
            if "floor" in tools:
                cells.append(ratio(tui, values["floor"]) if row.floor_ratio else "")
            verdict = ""
            if row.met is not None:
                verdict = "met" if row.met(values) else "NOT met"
            cells += [row.target, verdict]
        body.append(cells)
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "-" * len(line(head))
    return "\n".join([line(head), rule, *(line(r) for r in body)])


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def summary(samples: list[float]) -> str:
    if not samples:
        return "-"
    return ", ".join(f"{s:.2f}" if s < 10 else f"{s:.0f}" for s in samples)


def p90(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


# -- scenarios ------------------------------------------------------------------------------


@dataclass
class Context:
    base: Path
    tools: list[Tool]
    results: Results
    quick: bool
    idle_seconds: float
    data: Path | None = None
    writer: Path | None = None


def start_sleeps(ctx: Context, tool: Tool, run: Run, n: int, *, fast_restart: bool) -> Scanner:
    """Launch `tool` with n sleeps and wait until all of them run; return the scanner."""
    args = sleep_args(n)
    argv = tool.sleeps(run.dir, args, fast_restart=fast_restart)
    scanner = Scanner(run.token, sleep_matcher(args))
    tool.launch(run, argv)
    wait_until(lambda: scanner.count() >= n, 120, run=run, what=f"{n} sleeps running")
    return scanner


def measure(ctx: Context, row: str, tool: Tool, fn: Callable[[Run], Any]) -> Any:
    """Run one measurement in a fresh Run; a Failed is recorded in `row` and returns None."""
    try:
        with Run(ctx.base, tool.name) as run:
            return fn(run)
    except Failed as exc:
        progress(f"    {tool.name}: {exc}")
        ctx.results.put(row, tool.name, "timeout" if "timeout" in str(exc) else "failed")
        ctx.results.notes.append(f"{row} / {tool.name}: {exc}")
        return None


def scenario_startup(ctx: Context) -> None:
    """Launch → every sleep seen running in /proc, for 10, 100 and 500 services."""
    for n, key, reps in (
        (10, "start10", 4 if ctx.quick else 10),
        (100, "start100", 2 if ctx.quick else 5),
        (500, "start500", 1 if ctx.quick else 3),
    ):
        progress(f"startup, {n} services, {reps} runs each")
        samples: dict[str, list[float]] = {t.name: [] for t in ctx.tools}

        def once(run: Run, tool: Tool, n: int = n) -> float:
            start_sleeps(ctx, tool, run, n, fast_restart=False)
            return (time.perf_counter() - run.t0) * 1000

        for rep in range(reps):
            for tool in ctx.tools:
                if (key, tool.name) in ctx.results.values and not samples[tool.name]:
                    continue  # failed once: do not try again
                value = measure(ctx, key, tool, lambda r, t=tool: once(r, t))
                if value is not None:
                    samples[tool.name].append(value)
                    progress(f"  {rep + 1}/{reps} {tool.name:12} {value:8.1f} ms")
        for name, got in samples.items():
            if got:
                ctx.results.put(key, name, statistics.median(got))
                ctx.results.keep(key, name, got)


def scenario_restart(ctx: Context) -> None:
    """SIGKILL one of 5 services → a new process for it in /proc; median and p90."""
    kills = 10 if ctx.quick else 20
    progress(f"crash-to-restart, 5 services, {kills} kills each")
    for tool in ctx.tools:
        if not tool.restarts:
            ctx.results.put("restart50", tool.name, "n/a")
            ctx.results.put("restart90", tool.name, "n/a")
            continue

        def once(run: Run, tool: Tool = tool) -> list[float]:
            scanner = start_sleeps(ctx, tool, run, 5, fast_restart=True)
            time.sleep(0.5)
            args = [a.encode() for a in sleep_args(5)]
            latencies: list[float] = []
            seen: dict[int, float] = {}  # pid → when it was first seen
            for k in range(kills):
                arg = args[k % len(args)]
                now = time.perf_counter()
                before = {p for p, a in scanner.scan().items() if a == arg}
                victims = [p for p in before if alive(p)]
                if not victims:
                    raise Failed(f"no live process for sleep {arg.decode()}")
                born = seen.setdefault(victims[0], now)
                time.sleep(max(0.05, born + tool.min_uptime - now))
                t0 = time.perf_counter()
                os.kill(victims[0], signal.SIGKILL)

                def restarted(arg: bytes = arg, before: set[int] = before) -> bool:
                    return any(a == arg and p not in before for p, a in scanner.scan().items())

                t1 = wait_until(restarted, 10, run=run, interval=FAST_POLL, what=f"restart {k}")
                latencies.append((t1 - t0) * 1000)
                for p, a in scanner.scan().items():
                    if a == arg and p not in before:
                        seen.setdefault(p, t1)
            return latencies

        got = measure(ctx, "restart50", tool, once)
        if got:
            progress(
                f"  {tool.name:12} median {statistics.median(got):7.2f} ms, p90 {p90(got):7.2f}"
            )
            ctx.results.put("restart50", tool.name, statistics.median(got))
            ctx.results.put("restart90", tool.name, p90(got))
            ctx.results.keep("restart50", tool.name, got)
        elif ("restart50", tool.name) in ctx.results.values:
            ctx.results.put("restart90", tool.name, ctx.results.values["restart50", tool.name])


def scenario_idle(ctx: Context) -> None:
    """100 services up and quiet: the manager's CPU, wake-ups and RSS over a window."""
    seconds = ctx.idle_seconds
    progress(f"idle, 100 services, {seconds:g} s each")
    for tool in ctx.tools:

        def once(run: Run, tool: Tool = tool) -> None:
            scanner = start_sleeps(ctx, tool, run, 100, fast_restart=False)
            time.sleep(SETTLE)
            proc = psutil.Process(run.pid)
            ns0, wake0 = thread_cpu_ns(run.pid), thread_switches(run.pid)
            cpu0, t0 = sum(proc.cpu_times()[:2]), time.perf_counter()
            time.sleep(seconds)
            cpu1, t1 = sum(proc.cpu_times()[:2]), time.perf_counter()
            ns, wake1 = thread_cpu_ns(run.pid) - ns0, thread_switches(run.pid)
            run.check()
            cpu = (cpu1 - cpu0) / (t1 - t0) * 100
            per_thread = {tid: n - wake0.get(tid, 0) for tid, n in wake1.items()}
            wakeups = sum(per_thread.values())
            rss = proc.memory_info().rss / MIB
            services = set(scanner.scan())
            others = [p for p in tagged(run.token) if p != run.pid and p not in services]
            other_pss = sum(pss_mib(p) for p in others)
            name = tool.name
            ctx.results.put("idle_cpu", name, cpu)
            ctx.results.put("idle_wake", name, wakeups)
            ctx.results.put("idle_rss", name, rss)
            ctx.results.put("idle_other", name, f"{len(others)} / {other_pss:.1f}")
            threads = ", ".join(f"{tid}:{n}" for tid, n in sorted(per_thread.items()))
            ctx.results.notes.append(
                f"idle / {name}: {ns / 1e6:.2f} ms on CPU by schedstat"
                f" ({ns / 1e7 / (t1 - t0):.4f} % core); wake-ups by thread {threads}"
            )
            progress(
                f"  {name:12} cpu {cpu:.3f}%  wake-ups {wakeups}  rss {rss:.1f} MiB"
                f"  helpers {len(others)} (PSS {other_pss:.1f} MiB)"
            )

        measure(ctx, "idle_cpu", tool, once)


def make_data(base: Path) -> Path:
    """Write the 500,000 lines once: `%08d ` + 90 letters that depend on the index, + LF."""
    path = base / "lines.txt"
    with open(path, "wb") as f:
        step = 50_000
        for start in range(0, INGEST_LINES, step):
            f.write(b"".join(expected_line(i) for i in range(start, start + step)))
    assert path.stat().st_size == INGEST_LINES * LINE_BYTES
    return path


def expected_line(i: int) -> bytes:
    k = i % 26
    return b"%08d " % i + _LETTERS[k : k + 90] + b"\n"


def verify(path: Path, tool: Tool) -> tuple[int, int, int]:
    """Return (lost, duplicated, mangled) lines of the writer's output in the log file."""
    counts = [0] * INGEST_LINES
    mangled = 0
    data = path.read_bytes() if path.exists() else b""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for raw in lines:
        line = tool.parse_log(raw)
        if line is None:
            continue
        if len(line) == LINE_BYTES - 1 and line[:8].isdigit():
            i = int(line[:8])
            if i < INGEST_LINES and line + b"\n" == expected_line(i):
                counts[i] += 1
                continue
        mangled += 1
    lost = counts.count(0)
    duplicated = sum(c - 1 for c in counts if c > 1)
    return lost, duplicated, mangled


class TailWatch:
    """Tells when a log file holds the writer's last line (order is kept, so: all lines)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last = expected_line(INGEST_LINES - 1)
        self.size = -1

    def done(self) -> bool:
        try:
            size = os.stat(self.path).st_size
        except OSError:
            return False
        if size == self.size or size < INGEST_LINES * LINE_BYTES:
            return False
        self.size = size
        with open(self.path, "rb") as f:
            f.seek(max(0, size - 4096))
            return self.last in f.read()


def scenario_ingest(ctx: Context) -> None:
    """One service writes 500,000 lines of 100 bytes; launch → all of them in the log file."""
    reps = 1 if ctx.quick else 3
    progress(f"log ingest, {INGEST_LINES:,} lines of {LINE_BYTES} bytes, {reps} runs each")
    assert ctx.data is not None and ctx.writer is not None
    writer = [sys.executable, "-I", "-S", str(ctx.writer), str(ctx.data)]
    path = str(ctx.writer).encode()

    def is_writer(argv: list[bytes]) -> bytes | None:
        ok = path in argv and argv[0].rsplit(b"/", 1)[-1].startswith(b"python")
        return b"writer" if ok else None

    samples: dict[str, list[float]] = {t.name: [] for t in ctx.tools}
    from_writer: dict[str, list[float]] = {t.name: [] for t in ctx.tools}
    peaks: dict[str, list[float]] = {t.name: [] for t in ctx.tools}
    tools = [t for t in ctx.tools if t.logs]
    for tool in ctx.tools:
        if tool not in tools:
            for row in ("ingest", "ingest_w"):
                ctx.results.put(row, tool.name, "n/a")
    for rep in range(reps):
        for tool in tools:

            def once(
                run: Run, tool: Tool = tool
            ) -> tuple[float, float, tuple[int, int, int], float]:
                got = tool.ingest(run.dir, writer)
                assert got is not None
                argv, log, stdout = got
                watch = TailWatch(log)
                scanner = Scanner(run.token, is_writer)
                peak, started = 0.0, 0.0

                def complete() -> bool:
                    nonlocal peak, started
                    peak = max(peak, rss_mib(run.pid))
                    if not started and scanner.scan():
                        started = time.perf_counter()
                    return watch.done()

                tool.launch(run, argv, stdout)
                t1 = wait_until(complete, 120, run=run, what="all lines in the log")
                # Keep watching the memory a little: the manager may still be digesting.
                while time.perf_counter() < t1 + 0.5:
                    peak = max(peak, rss_mib(run.pid))
                    time.sleep(POLL)
                run.check()
                return t1 - run.t0, t1 - (started or t1), verify(log, tool), peak

            got = measure(ctx, "ingest", tool, once)
            if got is None:
                continue
            seconds, after_writer, bad, peak = got
            samples[tool.name].append(seconds)
            from_writer[tool.name].append(after_writer)
            if tool.name != "floor":
                peaks[tool.name].append(peak)
            worst = ctx.results.values.get(("ingest_ok", tool.name), (0, 0, 0))
            ctx.results.put("ingest_ok", tool.name, tuple(map(max, worst, bad)))
            progress(
                f"  {rep + 1}/{reps} {tool.name:12} {seconds:7.3f} s ({after_writer:.3f} s after"
                f" the writer started)  lost/dup/mangled {bad}  peak RSS {peak:.1f} MiB"
            )
    for name, got_samples in samples.items():
        if got_samples:
            ctx.results.put("ingest", name, statistics.median(got_samples))
            ctx.results.keep("ingest", name, got_samples)
            ctx.results.put("ingest_w", name, statistics.median(from_writer[name]))
            ctx.results.keep("ingest_w", name, from_writer[name])
        if peaks[name]:
            ctx.results.put("ingest_rss", name, max(peaks[name]))


STOP_SIZES = {100: (2, 5), 500: (1, 3), 2000: (1, 2)}
"""Services in each stop row, and its runs (quick, full)."""


def scenario_stop(ctx: Context) -> None:
    """N services up; ask the manager to stop → manager gone and no tagged process left.

    tuisup runs with --json here, so that its own `host_stopping` and `state` events say
    when the first and the last service was stopped (rows stop_first / stop_last).
    """
    for n, (quick, full) in STOP_SIZES.items():
        reps = quick if ctx.quick else full
        progress(f"stop, {n} services, {reps} runs each")
        samples: dict[str, list[float]] = {t.name: [] for t in ctx.tools}
        phases: dict[tuple[str, str], list[float]] = {}
        for rep in range(reps):
            for tool in ctx.tools:
                key = f"stop{n}"
                if (key, tool.name) in ctx.results.values and not samples[tool.name]:
                    continue  # failed once: do not try again
                value = measure(ctx, key, tool, lambda r, t=tool, n=n: stop_once(ctx, t, r, n))
                if value is None:
                    continue
                took, got = value
                samples[tool.name].append(took)
                for phase, ms in got.items():
                    phases.setdefault((phase, tool.name), []).append(ms)
                more = "".join(f", stopping→{k} stopped {v:.0f} ms" for k, v in got.items())
                progress(f"  {rep + 1}/{reps} {tool.name:12} {took:8.1f} ms{more}")
        for name, got_samples in samples.items():
            if got_samples:
                ctx.results.put(f"stop{n}", name, statistics.median(got_samples))
                ctx.results.keep(f"stop{n}", name, got_samples)
        for (phase, name), got_samples in phases.items():
            ctx.results.put(f"stop{n}_{phase}", name, statistics.median(got_samples))
            ctx.results.keep(f"stop{n}_{phase}", name, got_samples)


def stop_once(ctx: Context, tool: Tool, run: Run, n: int) -> tuple[float, dict[str, float]]:
    """Return the stop's milliseconds, and tuisup's host_stopping → first / last stopped."""
    with tool_json(tool):
        start_sleeps(ctx, tool, run, n, fast_restart=False)
    time.sleep(0.5)
    live = set(tagged(run.token))
    assert run.popen is not None
    popen = run.popen
    t0 = time.perf_counter()
    tool.stop(run)

    def gone() -> bool:
        nonlocal live
        if popen.poll() is None:
            return False
        live = {p for p in live if alive(p)}
        if live:
            return False
        live = {p for p in tagged(run.token) if alive(p)}
        return not live

    t1 = wait_until(gone, 120, what="manager and services gone")
    return (t1 - t0) * 1000, stop_phases(run.stdout) if isinstance(tool, Tuisup) else {}


@contextlib.contextmanager
def tool_json(tool: Tool) -> Iterator[None]:
    """Have tuisup print JSON events for the length of the block."""
    if not isinstance(tool, Tuisup):
        yield
        return
    tool.json = True
    try:
        yield
    finally:
        tool.json = False


def stop_phases(stdout: Path) -> dict[str, float]:
    """From tuisup's JSON events: ms from host_stopping to the first and the last `stopped`."""
    stopping, stopped = None, []
    for line in stdout.read_bytes().splitlines():
        if b'"host_stopping"' in line or b'"stopped"' in line:
            event = json.loads(line)
            if event["event"] == "host_stopping":
                stopping = event["ts"]
            elif event["event"] == "state" and event["state"] == "stopped":
                stopped.append(event["ts"])
    if stopping is None or not stopped:
        return {}
    return {"first": (min(stopped) - stopping) * 1000, "last": (max(stopped) - stopping) * 1000}


SCENARIOS: dict[str, Callable[[Context], None]] = {
    "startup": scenario_startup,
    "restart": scenario_restart,
    "idle": scenario_idle,
    "ingest": scenario_ingest,
    "stop": scenario_stop,
}


# -- setup ----------------------------------------------------------------------------------


def ensure_npm_peers(wanted: list[str]) -> list[str]:
    """Install PM2 and mprocs with npm into bench/.peers/npm; return those that run."""
    commands = {"pm2": "pm2-runtime", "mprocs": "mprocs"}
    wanted = [name for name in wanted if name in commands]
    missing = [name for name in wanted if not (NPM_BIN / commands[name]).exists()]
    npm = shutil.which("npm")
    if missing and npm is not None:
        progress(f"installing {', '.join(missing)} (optional) with npm into {PEERS / 'npm'}")
        (PEERS / "npm").mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--silent", "--no-audit", "--no-fund", *missing],
            cwd=PEERS / "npm",
            check=False,
        )
    available = []
    for name in wanted:
        if npm_version(name) is not None:
            available.append(name)
        else:
            progress(f"{name} is not available: skipped")
    return available


def npm_version(name: str) -> str | None:
    """The version of an npm peer that is installed and runs here, else None."""
    exe = NPM_BIN / {"pm2": "pm2-runtime"}.get(name, name)
    package = PEERS / "npm" / "node_modules" / name / "package.json"
    if not exe.exists() or not package.exists():
        return None
    # `pm2 --version` would start a daemon: ask mprocs only, and read PM2's package.
    if name == "mprocs":
        probe = subprocess.run([str(exe), "--version"], capture_output=True, check=False)
        if probe.returncode != 0:
            return None
    version: str = json.loads(package.read_text())["version"]
    return version


def ensure_peers(want_circus: bool) -> list[str]:
    """Install supervisor and honcho (and circus, if it installs) into bench/.peers."""
    uv = os.environ.get("UV") or shutil.which("uv")
    bin_dir = PEERS / "bin"
    python = bin_dir / "python"
    wanted = (("supervisor", "supervisord"), ("honcho", "honcho"))
    missing = [pkg for pkg, exe in wanted if not (bin_dir / exe).exists()]
    if missing or (want_circus and not (bin_dir / "circusd").exists()):
        if uv is None:
            raise SystemExit("bench: uv is needed to install the peers into bench/.peers")
        if not python.exists():
            progress(f"creating {PEERS}")
            subprocess.run([uv, "venv", "--quiet", "--allow-existing", str(PEERS)], check=True)
    if missing:
        progress(f"installing {', '.join(missing)} into {PEERS}")
        subprocess.run(
            [uv, "pip", "install", "--quiet", "--python", str(python), *missing], check=True
        )
    available = ["supervisord", "honcho"]
    if want_circus:
        if not (bin_dir / "circusd").exists():
            progress("installing circus (optional)")
            subprocess.run(
                [str(uv), "pip", "install", "--quiet", "--python", str(python), "circus"],
                check=False,
            )
        probe = (
            subprocess.run(
                [str(bin_dir / "circusd"), "--version"], capture_output=True, check=False
            )
            if (bin_dir / "circusd").exists()
            else None
        )
        if probe is not None and probe.returncode == 0:
            available.append("circus")
        else:
            progress("circus is not available: skipped")
    return available


def versions(names: list[str]) -> str:
    out = []
    for name in names:
        if name == "baseline":
            out.append("a baseline tuisup")
            continue
        if name in ("pm2", "mprocs"):
            out.append(f"{name} {npm_version(name)}")
            continue
        exe = {"circus": "circusd"}.get(name, name)
        path = PEERS / "bin" / exe
        probe = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, check=False
        )
        out.append(f"{name} {(probe.stdout or probe.stderr).strip().split()[-1]}")
    return ", ".join(out)


def revision() -> str:
    """The commit of the work tree, with `+dirty` when tuisup/ has changes."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "tuisup"], capture_output=True)
    return (head.stdout.strip() or "?") + ("+dirty" if dirty.stdout.strip() else "")


def manager_env(cold: bool) -> dict[str, str]:
    """The managers' environment: with a warm bytecode cache unless `cold`.

    This project's sessions export PYTHONDONTWRITEBYTECODE=1, which makes every Python
    manager compile its (uv-installed, uncompiled) dependencies from source at each launch.
    By default the managers instead share a bytecode cache under bench/.peers/pycache, as
    an ordinary install would have, and do not get PYTHONUNBUFFERED either.
    """
    env = dict(os.environ)
    if cold:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
        return env
    for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"):
        env.pop(name, None)
    env["PYTHONPYCACHEPREFIX"] = str(PEERS / "pycache")
    return env


def warm_up(ctx: Context) -> None:
    """Start and kill each tool once, unmeasured, so that caches are as for any later run."""
    progress("warming up (one unmeasured start of each tool)")
    for tool in ctx.tools:
        measure(
            ctx,
            "warm-up",
            tool,
            lambda run, t=tool: start_sleeps(ctx, t, run, 3, fast_restart=False),
        )
    ctx.results.values = {k: v for k, v in ctx.results.values.items() if k[0] != "warm-up"}


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, 5 s idle")
    parser.add_argument(
        "--only",
        metavar="NAME",
        help=f"run these scenarios only (comma list of {', '.join(SCENARIOS)})",
    )
    parser.add_argument("--idle-seconds", type=float, help="the idle window (default 20, quick 5)")
    parser.add_argument(
        "--tools",
        help="run these tools only (comma list of tuisup, supervisord, honcho, circus, pm2,"
        " mprocs, floor)",
    )
    parser.add_argument("--no-circus", action="store_true", help="do not try circus")
    parser.add_argument(
        "--cold",
        action="store_true",
        help="run the managers with PYTHONDONTWRITEBYTECODE=1 (no bytecode cache)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="also run the tuisup of another checkout with its own .venv (a git worktree of"
        " an older commit, say) as the tool `baseline`, in the same runs",
    )
    options = parser.parse_args(argv)
    options.scenarios = list(SCENARIOS)
    if options.only:
        options.scenarios = [s.strip() for s in options.only.split(",")]
        unknown = [s for s in options.scenarios if s not in SCENARIOS]
        if unknown:
            parser.error(
                f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
            )
    if options.idle_seconds is None:
        options.idle_seconds = 5.0 if options.quick else 20.0
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    if not TUISUP_COMMAND.exists():
        raise SystemExit(f"bench: {TUISUP_COMMAND} is missing: run `uv sync` first")
    wanted = options.tools.split(",") if options.tools else None
    peers = ensure_peers(not options.no_circus and (wanted is None or "circus" in wanted))
    peers += ensure_npm_peers([p for p in ("pm2", "mprocs") if wanted is None or p in wanted])
    raise_fd_limit()
    MANAGER_ENV.clear()
    MANAGER_ENV.update(manager_env(options.cold))
    signal.signal(signal.SIGTERM, _terminated)
    base = Path(tempfile.mkdtemp(prefix="tuisup-bench-"))
    (base / "floor.py").write_text(FLOOR)
    (base / "writer.py").write_text(WRITER)
    catalogue: list[Tool] = [
        Tuisup(), Supervisord(), Honcho(), Circus(), PM2(), Mprocs(), Floor(base / "floor.py")
    ]  # fmt: skip
    tools = [
        t
        for t in catalogue
        if (t.name in ("tuisup", "floor") or t.name in peers)
        and (wanted is None or t.name in wanted)
    ]
    if options.baseline is not None:
        tools.insert(1, Tuisup(options.baseline.resolve(), "baseline"))
        peers.append("baseline")
    ctx = Context(base, tools, Results(), options.quick, options.idle_seconds)
    ctx.results.notes.append("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    progress(f"tools: {', '.join(t.name for t in tools)}; scratch: {base}")
    try:
        if "ingest" in options.scenarios:
            ctx.data = make_data(base)
            ctx.writer = base / "writer.py"
        warm_up(ctx)
        for name in options.scenarios:
            SCENARIOS[name](ctx)
    except KeyboardInterrupt:
        progress("interrupted: cleaning up")
        return 130
    finally:
        for token in list(ACTIVE):
            kill_tagged(token)
        if not options.keep:
            shutil.rmtree(base, ignore_errors=True)
    ctx.results.notes.append("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    report(ctx, [t.name for t in tools], peers, options)
    return 0


def report(ctx: Context, tools: list[str], peers: list[str], options: argparse.Namespace) -> None:
    results = ctx.results
    print()
    print(
        f"tuisup {revision()} --no-tui vs {versions([p for p in peers if p in tools]) or '-'}; "
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
        f"{', quick' if options.quick else ''}"
        f"{', cold (no bytecode cache)' if options.cold else ', warm bytecode cache'}"
    )
    print()
    print(table(results, tools, options.idle_seconds))
    print()
    print("Ratios are peer / tuisup (above 1: tuisup is faster or lighter) and tuisup / floor.")
    print("Times are launch (or kill, or signal) → seen in /proc, polled every 1 ms (0.2 ms for")
    print("restarts): each is an upper bound by up to one poll. Startup, ingest and stop are")
    print("medians over runs; CPU is psutil's user+system of the manager (10 ms ticks); wake-ups")
    print("are voluntary+involuntary context switches summed over the manager's threads.")
    print("'other processes' are the manager's tagged processes that are not services (PSS).")
    if not options.cold:
        print(
            "Managers share a warm bytecode cache (bench/.peers/pycache); --cold measures without."
        )
    if results.samples:
        print()
        print("samples:")
        for (row, tool), got in results.samples.items():
            print(f"  {row:10} {tool:12} {summary(got)}")
    if results.notes:
        print()
        print("notes:")
        for note in results.notes:
            print(f"  {note}")


if __name__ == "__main__":
    sys.exit(main())
