"""Provides the process-tree guarantees: the child subreaper and escapee sweeps.

tuisup makes itself a child subreaper, so a service's descendant that leaves its process
group (`setsid`, a double fork) is re-parented to tuisup instead of init. Every service
process carries `TUISUP_HOST` and `TUISUP_SERVICE` in its environment, which its
descendants inherit; that tag is how an adopted escapee is attributed to its service.
Reaping is targeted: only pids that tuisup adopted, never `waitpid(-1)`, which would steal
exit statuses from whoever else in the process started a child.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import sys
from collections.abc import Iterator

PR_SET_CHILD_SUBREAPER = 36

HOST_TAG = "TUISUP_HOST"
SERVICE_TAG = "TUISUP_SERVICE"


def become_subreaper() -> bool:
    """Make this process adopt its orphaned descendants; return whether the kernel agreed."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0


def host_tag() -> str:
    """Return a value of `TUISUP_HOST` that marks one host's processes.

    The random part keeps a later tuisup that happens to get the same pid from being
    mistaken for this one.
    """
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def children(pid: int | str = "self") -> set[int]:
    """Return the pids of a process's direct children (of all its threads)."""
    pids: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return pids
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                pids.update(int(p) for p in f.read().split())
        except OSError:
            continue
    return pids


def stat(pid: int) -> tuple[str, int, int, int] | None:
    """Return `(state, ppid, pgid, sid)` of `pid` from /proc, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; the fields follow the last ")".
    fields = raw[raw.rfind(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[3])


def service_of(pid: int) -> tuple[str | None, str | None]:
    """Return `(host tag, service)` from a process's environment, (None, None) if unreadable."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:
        return None, None
    host = service = None
    host_prefix, service_prefix = f"{HOST_TAG}=".encode(), f"{SERVICE_TAG}=".encode()
    for item in env:
        if item.startswith(host_prefix):
            host = item[len(host_prefix) :].decode(errors="replace")
        elif item.startswith(service_prefix):
            service = item[len(service_prefix) :].decode(errors="replace")
    return host, service


class Reaper:
    """Finds, kills and reaps the descendants that escaped their service's process group.

    `managed` holds the pids that executors spawned and reap themselves; everything else
    that is a child of tuisup and lives in another session was adopted.
    """

    def __init__(self) -> None:
        self.managed: set[int] = set()
        self.tag = host_tag()
        self._own_sid = os.getsid(0)
        self.adopted: dict[int, str] = {}
        """Live adopted escapees seen so far, and their service."""

    def _adopted(self) -> Iterator[tuple[int, str]]:
        """Yield `(pid, state)` of each child of tuisup that was adopted."""
        for pid in children() - self.managed:
            info = stat(pid)
            if info is not None and info[3] != self._own_sid:
                yield pid, info[0]

    def reap_zombies(self) -> int:
        """Reap every adopted child that has exited; return how many."""
        reaped = 0
        for pid, state in list(self._adopted()):
            if state in ("Z", "X"):
                reaped += _reap(pid)
                self.adopted.pop(pid, None)
        return reaped

    def sweep(self, service: str, sig: signal.Signals = signal.SIGKILL) -> int:
        """Send `sig` to every live adopted escapee of `service`; reap the dead ones.

        Returns:
            How many live escapees were signalled.
        """
        signalled = 0
        for pid, state in list(self._adopted()):
            if state in ("Z", "X"):
                _reap(pid)
                self.adopted.pop(pid, None)
                continue
            owner = self.adopted.get(pid)
            if owner is None:
                host, owner = service_of(pid)
                if host != self.tag or owner is None:
                    continue
                self.adopted[pid] = owner
            if owner == service:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                signalled += 1
        return signalled


def _reap(pid: int) -> int:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return 0
    return 1 if done else 0
