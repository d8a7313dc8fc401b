"""Provides Leader: a process spawned as the leader of a session of its own, with a pidfd.

Every process tuisup starts (a service's run, a health-check command, the lifeline) is
spawned the same way, and this is the one place that does it:

- from the event-loop thread (`subprocess.Popen`, vfork + exec, as asyncio's own spawn);
- as the leader of a new session, so its process group can be signalled as a whole and
  a Ctrl-C in tuisup's terminal never reaches it;
- watched through a pidfd, which becomes readable when it exits, independently of its
  pipes (a grandchild holding them does not hide the exit);
- reaped only after its group was killed: while the leader is an unreaped zombie, its
  pid (and so its process-group id) cannot be handed to another process.

Its pid is in the reaper's `managed` set while it is unreaped, so that the reaper never
takes it for an adopted escapee (and never steals its exit status).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

import anyio


class Leader:
    """One spawned session leader, until it has been reaped."""

    def __init__(self, popen: subprocess.Popen[bytes], pidfd: int, managed: set[int]) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.pidfd = pidfd
        """Readable once the leader has exited; -1 once let go of (at the reap)."""
        self.reaped = False
        self._managed = managed
        managed.add(self.pid)

    @classmethod
    def spawn(
        cls,
        argv: tuple[str, ...] | list[str],
        *,
        cwd: Path | str | None,
        env: Mapping[str, str],
        managed: set[int],
        stdin: int = subprocess.DEVNULL,
        stdout: int = subprocess.DEVNULL,
        stderr: int = subprocess.DEVNULL,
        pass_fds: tuple[int, ...] = (),
    ) -> Leader:
        """Start `argv` as the leader of a new session, with no file descriptor but these.

        Raises:
            OSError: It could not be started (no such program, no such folder, no
                descriptors left). A process that started but could get no pidfd, which
                nothing could then watch, is killed with its group and reaped first.
        """
        popen = subprocess.Popen(  # noqa: ASYNC220 - a vfork + exec, from the loop thread
            argv,
            cwd=str(cwd) if cwd is not None else None,  # named as written in errors
            env=env,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            close_fds=True,
            pass_fds=pass_fds,
        )
        return cls.adopt(popen, managed)

    @classmethod
    def adopt(cls, popen: subprocess.Popen[bytes], managed: set[int]) -> Leader:
        """Watch a session leader just started (by `spawn`, or the spare lifeline).

        Raises:
            OSError: It could get no pidfd, which nothing could then watch: it was killed
                with its group and reaped.
        """
        try:
            pidfd = os.pidfd_open(popen.pid)
        except OSError:
            with contextlib.suppress(OSError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()  # SIGKILLed: it is gone at once
            raise
        return cls(popen, pidfd, managed)

    def signal_group(self, sig: signal.Signals) -> None:
        """Send `sig` to the leader's whole process group, while it is ours to signal."""
        if self.reaped:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def group_alive(self) -> bool:
        """Whether any process is left in the leader's group."""
        try:
            os.killpg(self.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    async def exited(self) -> None:
        """Return once the leader has exited (it may not be reaped yet)."""
        if self.pidfd >= 0:
            await anyio.wait_readable(self.pidfd)

    def reap(self) -> int | None:
        """Reap the exited leader and let go of its pidfd; return its exit status.

        Returns:
            The return code (negative: the signal that ended it), or None when it has not
            exited even so (stuck in the kernel after SIGKILL), which is given up on.
        """
        if self.reaped:
            return self.popen.returncode
        code = self.popen.poll()
        self.reaped = code is not None
        if self.reaped:
            self._managed.discard(self.pid)
        if self.pidfd >= 0:
            fd, self.pidfd = self.pidfd, -1
            os.close(fd)
        return code


def raise_open_files_limit() -> None:
    """Raise the soft limit of open files to the hard limit, as far as the kernel allows.

    Each running service holds a few descriptors (its pipes, a pidfd): the common soft
    limit of 1024 would not fit the hundreds of services tuisup is made for. Services
    inherit the raised limit, as they do under supervisord's `minfds` or Docker.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard
    if hard == resource.RLIM_INFINITY:  # as far as the kernel lets any process go
        try:
            wanted = int(Path("/proc/sys/fs/nr_open").read_text())
        except (OSError, ValueError):
            wanted = 1 << 20
    if wanted > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


DESCRIPTORS_PER_SERVICE = 6
"""What one service may hold open at a time: its pipes and pidfd, its log file, a check's."""


def reserve_descriptors(services: int) -> None:
    """Raise the open-files limit, and grow the descriptor table for `services` services now.

    The kernel doubles a process's table of descriptors each time it fills up, and never
    shrinks it. Once the process has more than one thread, each doubling waits for an RCU
    grace period: 10 to 22 ms measured here, stalling the loop at the 16th, the 38th and the
    80th service of a start. Called before tuisup starts any thread, it costs microseconds.
    """
    raise_open_files_limit()
    import fcntl
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    highest = min(64 + DESCRIPTORS_PER_SERVICE * services, soft - 1)
    try:
        probe = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        # The lowest free descriptor from `highest` up: nothing open is ever replaced.
        os.close(fcntl.fcntl(probe, fcntl.F_DUPFD_CLOEXEC, highest))
    except OSError:
        pass  # no more descriptors: the table grows as it fills, as it would have
    finally:
        os.close(probe)
