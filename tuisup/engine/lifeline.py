"""Provides the lifeline: what kills every service's process tree if tuisup itself dies.

The lifeline is a tiny child process in a session of its own, blocked reading a pipe whose
only write end tuisup holds. However tuisup ends (even by SIGKILL) the kernel closes that
end, the read returns, and the lifeline SIGKILLs every process tagged with this host's
`TUISUP_HOST`, again and again until none is left: direct children, grandchildren and
escapees alike. A parent-death signal would cover only direct children, and would cost an
exec wrapper on every spawn; the lifeline costs one process per host and nothing per spawn.

The process itself, and the spare that `tuisup` starts before it imports the engine, are
`tuisup.lifeline_process`; this keeps one alive for a host.
"""

from __future__ import annotations

import os

import anyio
from anyio.abc import TaskStatus

from tuisup import lifeline_process
from tuisup.engine.reaper import HOST_TAG
from tuisup.engine.spawn import Leader

RETRY = 1.0
"""Seconds between two attempts to start a lifeline that could not be started."""


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
        """Start a lifeline (or take the spare `tuisup` started early) and tell it our tag.

        Raises:
            OSError: It could not be started (too many open files); nothing is left open.
        """
        popen, write_end = lifeline_process.take(f"{HOST_TAG}={self.tag}")
        try:
            leader = Leader.adopt(popen, self._managed)
        except OSError:
            os.close(write_end)
            raise
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
