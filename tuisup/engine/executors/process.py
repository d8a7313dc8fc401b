"""Provides the process executor: a service as an OS process in its own session.

The service is spawned as a session `Leader` (see `engine.spawn`) with pipes made here,
read in large non-blocking chunks by loop callbacks. Its exit is seen through the leader's
pidfd; then what is left of its tree is killed and reaped before the run reports its end.

The host's own short commands (hooks, health checks) are spawned and awaited here too
(`spawn_command`, `await_command`), in the service's cwd and environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import anyio
from anyio.abc import TaskGroup

from tuisup.engine.executors.base import KILL_GRACE, Executor, Run, StartError
from tuisup.engine.logs import LogStore, StreamSink
from tuisup.engine.reaper import HOST_TAG, SERVICE_TAG, Reaper
from tuisup.engine.spawn import Leader
from tuisup.engine.status import ExitStatus
from tuisup.spec import ExecutorKind, ServiceSpec

READ_SIZE = 1 << 20
"""Bytes asked for per read: one pipe's worth, so a fast writer costs few wake-ups."""
PIPE_SIZE = 1 << 20
"""The capacity a flooding service's pipe is grown to (the kernel may grant less)."""
FULL_PIPE = 64 * 1024
"""A pipe's capacity as made: a read that finds this much waiting means a flood.

Pipes are grown only then: growing each at the spawn cost 28 µs a pipe (3 ms of a start of
100 services), for the few services that ever write fast enough to fill one."""
DRAIN_GRACE = 0.5
"""Seconds to wait after an exit for its pipes to reach end of file before reporting it."""
SWEEP_TIME = 1.0
"""Seconds to keep killing leftovers of a run's process tree after its leader exited."""
COMMAND_DRAIN_GRACE = 0.2
"""Seconds to wait, once a command's group is killed, for its output to reach end of file."""


Feed = Callable[[ServiceSpec, int, "ProcessRun", TaskGroup], None]
"""Starts feeding a listener's run through the write end of its stdin (`engine.listeners`)."""


class ProcessExecutor(Executor):
    """Starts commands, and Python targets in a child interpreter, as group leaders."""

    def __init__(
        self,
        reaper: Reaper,
        root: Path,
        feed: Feed | None = None,
        host_env: Mapping[str, str] | None = None,
    ) -> None:
        self.reaper = reaper
        self.root = root
        self.feed = feed
        """What feeds a listener's stdin; without it, every stdin is /dev/null."""
        self.host_env = host_env if host_env is not None else {}
        """What the host tells every service's processes (`Host.env`)."""

    async def start(self, spec: ServiceSpec, logs: LogStore, tg: TaskGroup) -> Run:
        """Spawn the service; see `Executor.start`."""
        env = service_env(spec, self.reaper, self.host_env)
        argv = spec.argv
        ours: list[int] = []  # our ends, kept by the run (or its feeder); closed if it fails
        theirs: list[int] = []  # the child's ends: always closed here after the spawn
        status_r = status_w = -1
        stdin_r = stdin_w = -1
        try:
            if spec.listen is not None and self.feed is not None:
                # A listener's stdin: the child reads, the run's feeder writes.
                stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC)
                theirs.append(stdin_r)
                ours.append(stdin_w)
            if spec.target is not None:
                status_r, status_w = _pipe(ours, theirs)
                argv = _child_argv(spec, status_w, self.root)
                paths = [_PACKAGE_ROOT, env.get("PYTHONPATH", "")]
                env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
            out_r, out_w = _pipe(ours, theirs)
            err_r, err_w = _pipe(ours, theirs)
            leader = Leader.spawn(
                argv,
                cwd=spec.cwd,
                env=env,
                managed=self.reaper.managed,
                stdin=stdin_r if stdin_r >= 0 else subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                pass_fds=(status_w,) if status_w >= 0 else (),
            )
        except OSError as exc:
            _close(ours)
            raise StartError(f"cannot start: {exc}") from exc
        finally:
            _close(theirs)
        status_fd = status_r if status_r >= 0 else None
        run = ProcessRun(spec.name, leader, self.reaper, status_fd)
        run.kind = spec.executor or ExecutorKind.PROCESS
        run.attach(
            tg,
            StreamSink(logs, spec.name, "stdout"),
            out_r,
            StreamSink(logs, spec.name, "stderr"),
            err_r,
        )
        if stdin_w >= 0:
            assert self.feed is not None
            self.feed(spec, stdin_w, run, tg)
        return run


def _pipe(ours: list[int], theirs: list[int]) -> tuple[int, int]:
    """A pipe whose read end goes to `ours` and write end to `theirs`."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    ours.append(read_end)
    theirs.append(write_end)
    return read_end, write_end


def _close(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def service_env(spec: ServiceSpec, reaper: Reaper, host_env: Mapping[str, str]) -> dict[str, str]:
    """A service's environment: tuisup's, the service's, and the host's (`Host.env`).

    With the tags that find its processes.
    """
    return {**os.environ, **spec.env, **host_env, HOST_TAG: reaper.tag, SERVICE_TAG: spec.name}


def spawn_command(
    argv: tuple[str, ...] | list[str], spec: ServiceSpec, env: Mapping[str, str], reaper: Reaper
) -> tuple[Leader, int]:
    """Start a command of the host's (a hook, a health check) in `spec`'s cwd.

    Returns:
        Its leader, and the read end of the pipe its stdout and stderr both go to.

    Raises:
        OSError: It could not be started.
    """
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        leader = Leader.spawn(
            argv, cwd=spec.cwd, env=env, managed=reaper.managed, stdout=write_fd, stderr=write_fd
        )
    except OSError:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return leader, read_fd


async def await_command(
    leader: Leader, read_fd: int, write: Callable[[bytes], None], timeout: float = math.inf
) -> tuple[int | None, bool]:
    """Wait for a command's end within `timeout`, its output drained to `write`.

    However this ends (cancelled too), its group is killed, it is reaped and `read_fd`
    closed: what the command left would hold the pipe open, and outlive it.

    Returns:
        Its return code (negative: the signal; None: it did not end even after SIGKILL),
        and whether it was killed for taking longer than `timeout`.
    """
    drained = anyio.Event()
    timed_out = False
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_drain, read_fd, write, drained)
            with anyio.move_on_after(timeout) as timer:
                await leader.exited()
            timed_out = timer.cancelled_caught
            leader.signal_group(signal.SIGKILL)
            with anyio.move_on_after(COMMAND_DRAIN_GRACE):
                await drained.wait()
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            leader.signal_group(signal.SIGKILL)
            with anyio.move_on_after(KILL_GRACE):
                await leader.exited()
            code = leader.reap()
            os.close(read_fd)
    return code, timed_out


async def _drain(fd: int, write: Callable[[bytes], None], done: anyio.Event) -> None:
    """Hand a command's output to `write` until end of file (or cancelled)."""
    os.set_blocking(fd, False)
    try:
        while True:
            await anyio.wait_readable(fd)
            try:
                data = os.read(fd, READ_SIZE)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                return
            write(data)
    finally:
        done.set()


_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])
"""The folder holding the tuisup package, so that a child interpreter imports it."""


def _child_argv(spec: ServiceSpec, status_fd: int, root: Path) -> tuple[str, ...]:
    assert spec.target is not None and spec.executor is not None
    return (
        sys.executable,
        "-m",
        "tuisup.child",
        spec.name,
        spec.target,
        spec.executor.value,
        str(int(spec.stop_signal)),
        str(status_fd),
        str(root),
    )


class ProcessRun(Run):
    """One process-group-leading OS process and everything it starts."""

    def __init__(
        self, service: str, leader: Leader, reaper: Reaper, status_fd: int | None = None
    ) -> None:
        super().__init__()
        self.service = service
        self._status_fd = status_fd
        self._ready = anyio.Event()
        self._ready_ok = False
        self._start_error: str | None = None
        self._exception: str | None = None
        self.pid = leader.pid
        self._leader = leader
        self._reaper = reaper
        self._drained = anyio.Event()
        self._exited_at = 0.0
        self._open: set[int] = set()
        self._grown: set[int] = set()
        self._tell: Callable[[ExitStatus], None] | None = None
        self._loop: asyncio.AbstractEventLoop
        self._tg: TaskGroup

    def attach(
        self, tg: TaskGroup, out: StreamSink, out_fd: int, err: StreamSink, err_fd: int
    ) -> None:
        """Watch the pipes and the exit with the loop's reader callbacks.

        Callbacks, not a task per pipe: a spawn then costs no task at all, and a read no
        registration of its own; only the end of a run starts a task (`_finish`).
        """
        self._loop = asyncio.get_running_loop()
        self._tg = tg
        self._watch(out_fd, out.write, out.close)
        self._watch(err_fd, err.write, err.close)
        if self._status_fd is not None:
            status = _StatusReader(self)
            self._watch(self._status_fd, status.write, self._ready.set)
        self._loop.add_reader(self._leader.pidfd, self._on_exit)

    def _watch(self, fd: int, write: Callable[[bytes], None], close: Callable[[], None]) -> None:
        os.set_blocking(fd, False)
        self._open.add(fd)
        self._loop.add_reader(fd, self._on_readable, fd, write, close)

    def _on_readable(
        self, fd: int, write: Callable[[bytes], None], close: Callable[[], None]
    ) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            if len(data) >= FULL_PIPE and fd not in self._grown:
                self._grown.add(fd)
                with contextlib.suppress(OSError):  # over /proc/sys/fs/pipe-max-size, say
                    fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            write(data)
            return
        self._loop.remove_reader(fd)
        os.close(fd)
        self._open.discard(fd)
        close()
        if not self._open:
            self._drained.set()

    def when_ended(self, tg: TaskGroup, tell: Callable[[ExitStatus], None]) -> None:
        """`_finish` tells, once it has reaped and swept: no task waits for each run."""
        if self._ended.is_set():
            assert self._status is not None
            tell(self._status)
        else:
            self._tell = tell

    def _on_exit(self) -> None:
        self._exited_at = time.monotonic()  # the sweep needs a look at the children after it
        self._reaper.quiet()
        self._loop.remove_reader(self._leader.pidfd)
        self._tg.start_soon(self._finish)

    async def _finish(self) -> None:
        """The leader is a zombie: kill what is left of its tree, reap, and report."""
        with anyio.CancelScope(shield=True), self._reaper.busy():
            # Its pgid is still ours to kill while it is unreaped. Leftovers in the group
            # die with it, since a service's exit is the end of its whole tree.
            self._leader.signal_group(signal.SIGKILL)
            code = self._leader.reap()
            if code is None:
                # Stuck in the kernel (state D) even after SIGKILL: nothing more to do.
                self._end(ExitStatus(error="did not end after SIGKILL"))
                return
            await self._sweep()
            with anyio.move_on_after(DRAIN_GRACE):
                await self._drained.wait()
            if code < 0:
                self._end(ExitStatus(signal=-code, error=self._exception))
            else:
                self._end(ExitStatus(code=code, error=self._exception))

    def _end(self, status: ExitStatus) -> None:
        self._status = status
        self._ended.set()
        if self._tell is not None:
            self._tell(status)

    def on_status(self, line: str) -> None:
        """Take one line from a Python child's status pipe."""
        word, _, rest = line.partition(" ")
        if word == "ready":
            self._ready_ok = True
            self._ready.set()
        elif word == "error":
            self._start_error = rest
            self._ready.set()
        elif word == "exception":
            self._exception = rest

    @property
    def up(self) -> bool:
        """A command is up once spawned; a Python child only once its target is imported."""
        return self._status_fd is None

    async def started(self) -> None:
        """For a Python child, wait until its target is imported; see `Run.started`."""
        if self._status_fd is None:
            return
        await self._ready.wait()
        if not self._ready_ok:
            status = await self.wait()
            reason = self._start_error or f"exited with {status.describe()} before it was ready"
            raise StartError(f"cannot start: {reason}")

    async def _sweep(self) -> None:
        """Kill and reap what is left of the tree: group members and tagged escapees."""
        reaper = self._reaper
        deadline = time.monotonic() + SWEEP_TIME
        clean = 0
        killed = False
        since = self._exited_at
        while time.monotonic() < deadline:
            reaper.reap_zombies(since)
            left = reaper.sweep(self.service, signal.SIGKILL, since)
            since = time.monotonic()
            killed = killed or bool(left)
            if self._leader.group_alive():  # members SIGKILLed with the leader, not gone yet
                left += 1
            # Killing a daemon re-parents its own children to us a moment later: after a
            # kill, only a second empty look means the tree is really gone.
            clean = clean + 1 if not left else 0
            if clean >= (2 if killed else 1):
                return
            await anyio.sleep(0.005)

    async def stop(self, sig: signal.Signals, timeout: float) -> ExitStatus:
        """Signal the group (and escapees), then SIGKILL after `timeout`."""
        if not self._ended.is_set():
            with self._reaper.busy():
                self._leader.signal_group(sig)
                self._leader.signal_group(signal.SIGCONT)
                self._reaper.sweep(self.service, sig)
                await self._escalate(timeout)
        if self._status is None:
            # Only a process stuck in the kernel (state D) gets here; report what we know.
            return ExitStatus(error="did not end after SIGKILL")
        return self._status

    def kill(self) -> None:
        """SIGKILL the group and every escapee now."""
        self._reaper.quiet()
        self._leader.signal_group(signal.SIGKILL)
        self._reaper.sweep(self.service, signal.SIGKILL)


class _StatusReader:
    """Splits a Python child's status pipe into lines for its run."""

    def __init__(self, run: ProcessRun) -> None:
        self._run = run
        self._buffer = b""

    def write(self, data: bytes) -> None:
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        for line in lines:
            self._run.on_status(line.decode("utf-8", "replace"))
