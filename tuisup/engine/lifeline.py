"""Provides the lifeline: what kills every service's process tree if tuisup itself dies.

The lifeline is a tiny child process in a session of its own, blocked reading a pipe whose
only write end tuisup holds. However tuisup ends (even by SIGKILL) the kernel closes that
end, the read returns, and the lifeline SIGKILLs every process tagged with this host's
`TUISUP_HOST`, again and again until none is left: direct children, grandchildren and
escapees alike. A parent-death signal would cover only direct children, and would cost an
exec wrapper on every spawn; the lifeline costs one process per host and nothing per spawn.
"""

from __future__ import annotations

import os
import sys

import anyio
from anyio.abc import TaskStatus

from tuisup.engine.reaper import HOST_TAG, SERVICE_TAG
from tuisup.engine.spawn import Leader

RETRY = 1.0
"""Seconds between two attempts to start a lifeline that could not be started."""

_SCRIPT = """
import os, signal, sys, time
needle = sys.argv[1].encode()
while os.read(0, 4096):
    pass
me = os.getpid()
for _ in range(500):
    found = False
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open("/proc/" + entry + "/environ", "rb") as f:
                if needle not in f.read().split(b"\\0"):
                    continue
            os.kill(int(entry), signal.SIGKILL)
            found = True
        except OSError:
            pass
    if not found:
        break
    time.sleep(0.01)
"""


class Lifeline:
    """One lifeline process for a host whose processes carry `TUISUP_HOST=tag`.

    Its pid is kept in `managed`, so the reaper never mistakes it for an adopted escapee.
    """

    def __init__(self, tag: str, managed: set[int]) -> None:
        self.tag = tag
        self._managed = managed
        self._write_end: int | None = None
        self._leader: Leader | None = None
        self._done = anyio.Event()
        self._closing = False

    @property
    def pid(self) -> int | None:
        """The lifeline's pid while it runs."""
        return self._leader.pid if self._leader is not None else None

    def _spawn(self) -> Leader:
        """Start a lifeline.

        Raises:
            OSError: It could not be started (too many open files); nothing is left open.
        """
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        env = {k: v for k, v in os.environ.items() if k not in (HOST_TAG, SERVICE_TAG)}
        try:
            # In a session of its own: a Ctrl-C in the terminal must not reach it.
            leader = Leader.spawn(
                [sys.executable, "-I", "-S", "-c", _SCRIPT, f"{HOST_TAG}={self.tag}"],
                cwd=None,
                env=env,
                managed=self._managed,
                stdin=read_end,
            )
        except OSError:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        self._leader, self._write_end = leader, write_end
        return leader

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Keep a lifeline alive until `close`, starting a new one if it is ever killed.

        Reports itself started (`TaskGroup.start`) once the first lifeline runs, or could
        not be started, so that no service is spawned before its safety net is there.
        """
        reported = False
        try:
            while not self._closing:
                try:
                    leader: Leader | None = self._spawn()
                except OSError:
                    leader = None
                if not reported:
                    task_status.started()
                    reported = True
                if leader is None:
                    await anyio.sleep(RETRY)  # out of descriptors, say: try again soon
                    continue
                await leader.exited()
                leader.reap()
                if self._write_end is not None:  # killed, not released: start another
                    os.close(self._write_end)
                    self._write_end = None
        finally:
            self._done.set()

    async def aclose(self, timeout: float = 2.0) -> None:
        """Release the lifeline (it finds nothing left to kill and exits) and reap it."""
        self._closing = True
        if self._write_end is not None:
            fd, self._write_end = self._write_end, None
            os.close(fd)
        with anyio.move_on_after(timeout):
            await self._done.wait()
