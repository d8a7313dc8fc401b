"""Provides the process-tree guarantees: the child subreaper and escapee sweeps.

tuisup makes itself a child subreaper, so a service's descendant that leaves its process
group (`setsid`, a double fork) is re-parented to tuisup instead of init. Every service
process carries `TUISUP_HOST` and `TUISUP_SERVICE` in its environment, which its
descendants inherit; that tag is how an adopted escapee is attributed to its service.
Reaping is targeted: only pids that tuisup adopted, never `waitpid(-1)`, which would steal
exit statuses from whoever else in the process started a child.

Finding the adopted ones means listing every child of tuisup, services included: a look
costs as much as there are services. So one look serves every sweep that can use it (all
the services that end in one moment share it), and SIGCHLD, which asks for a look, is not
listened to while runs are stopping or sweeping after their exit (their sweeps look anyway)
nor for REAP_GAP after each signal: stopping N services costs a bounded number of looks,
not N of them. Listening throughout would also take one signal per exit, and the event
loop's wakeup socket holds about 280: a burst of exits overflows it, Python reports each
lost signal on stderr, and a signal lost there can be a Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator

PR_SET_CHILD_SUBREAPER = 36

LOOK_AGE = 0.002
"""Seconds a look at tuisup's children serves a caller that asks for no particular moment."""
REAP_GAP = 0.01
"""Seconds SIGCHLD is not listened to after a signal, or after the last stop or sweep."""

HOST_TAG = "TUISUP_HOST"
SERVICE_TAG = "TUISUP_SERVICE"

MANAGED: set[int] = set()
"""The pids that the executors of every host in this process spawned and reap themselves:
never an adopted escapee, whichever host looks (a process lists its children, not a host's)."""


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
    return f"{os.getpid()}-{os.urandom(4).hex()}"  # not `secrets`: 2 ms of imports


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
        self.managed = MANAGED
        self.tag = host_tag()
        self._own_sid = os.getsid(0)
        self.adopted: dict[int, str] = {}
        """Live adopted escapees seen so far, and their service."""
        self._look: dict[int, str] = {}
        """The adopted children at the last look, and their state (`S`, `Z`, ...)."""
        self._looked_at = -math.inf
        self._busy = 0
        """Runs stopping or sweeping after their exit now: SIGCHLD is not listened to."""
        self._loop: asyncio.AbstractEventLoop | None = None
        """The loop SIGCHLD is listened to on, between `listen` and `close`."""
        self._listening = False
        self._resume: asyncio.TimerHandle | None = None
        self._before: set[int] = set()
        """Children in other sessions when it began listening: not this host's to sweep."""
        self.ended: Callable[[str], bool] = lambda service: False
        """Whether a service has no run any more (the host says): an escapee of it that
        turns up later than its run's sweep is killed when tuisup next hears of a child."""

    def _adopted(self, since: float | None) -> list[tuple[int, str]]:
        """Return `(pid, state)` of each adopted child, by a look begun at `since` or later.

        `since` None takes a look at most LOOK_AGE old. Reaped pids leave the look, so a
        pid in it is a child of tuisup still: its number cannot have been handed on.
        """
        now = time.monotonic()
        if self._looked_at < (now - LOOK_AGE if since is None else since):
            look = {}
            for pid in children() - self.managed:
                info = stat(pid)
                if info is not None and info[3] != self._own_sid:
                    look[pid] = info[0]
            self._look, self._looked_at = look, now
        return list(self._look.items())

    def _reap(self, pid: int) -> int:
        self._look.pop(pid, None)
        self.adopted.pop(pid, None)
        return _reap(pid)

    def reap_zombies(self, since: float | None = None) -> int:
        """Reap every adopted child that has exited (by a look from `since`); return how many."""
        reaped = 0
        for pid, state in self._adopted(since):
            if state in ("Z", "X"):
                reaped += self._reap(pid)
        return reaped

    def listen(self) -> None:
        """Reap adopted escapees as they exit (on SIGCHLD), until `close`; from the loop.

        Not from a thread other than the main one, where signals cannot be listened to.
        """
        if not sys.platform.startswith("linux"):
            return
        self._before = {pid for pid, _ in self._adopted(time.monotonic())}
        self._loop = asyncio.get_running_loop()
        self._hear()

    def close(self) -> None:
        """Stop listening to SIGCHLD."""
        self._deafen()
        if self._resume is not None:
            self._resume.cancel()
        self._loop = None

    def _hear(self) -> None:
        """Listen to SIGCHLD again, and reap what exited while it was not listened to."""
        self._resume = None
        if self._loop is None or self._busy or self._listening:
            return
        try:
            self._loop.add_signal_handler(signal.SIGCHLD, self._on_sigchld)
        except (RuntimeError, ValueError):  # not the main thread
            self._loop = None
            return
        self._listening = True
        self._tidy()

    def _deafen(self) -> None:
        if self._listening and self._loop is not None:
            self._loop.remove_signal_handler(signal.SIGCHLD)
        self._listening = False

    def _on_sigchld(self) -> None:
        self.quiet()
        self._tidy()

    def _tidy(self) -> None:
        """Reap what exited, and kill escapees of services that have ended.

        A child that exits is what re-parents its own children to tuisup: the moment a
        late escapee (a daemon forked after its service's sweep) becomes ours.
        """
        for pid, state in self._adopted(time.monotonic()):
            if state in ("Z", "X"):
                self._reap(pid)
            elif (owner := self._owner(pid)) is not None and self.ended(owner):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def quiet(self) -> None:
        """Exits are coming that are swept anyway: stop listening for REAP_GAP."""
        self._deafen()
        if self._loop is not None and self._resume is None and not self._busy:
            self._resume = self._loop.call_later(REAP_GAP, self._hear)

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Mark a run stopping or sweeping after its exit: its sweep reaps what SIGCHLD would."""
        self._busy += 1
        self.quiet()
        try:
            yield
        finally:
            self._busy -= 1
            self.quiet()

    def sweep(
        self, service: str, sig: signal.Signals = signal.SIGKILL, since: float | None = None
    ) -> int:
        """Send `sig` to every live adopted escapee of `service`; reap the dead ones.

        Args:
            service: Whose escapees.
            sig: The signal.
            since: The look at the children must have begun at this `time.monotonic()` or
                later (after what the caller needs it to see); None: a recent look will do.

        Returns:
            How many live escapees were signalled.
        """
        signalled = 0
        for pid, state in self._adopted(since):
            if state in ("Z", "X"):
                self._reap(pid)
                continue
            if self._owner(pid) == service:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                signalled += 1
        return signalled

    async def sweep_all(self, within: float = 1.0) -> int:
        """SIGKILL every escapee adopted since `listen`, and reap it: the host is ending.

        Even one whose environment was cleared (`env -i setsid ...`): no tag tells its
        service, but only a descendant is ever re-parented to tuisup. Not one tagged for
        another host in this process, nor a child that was there before this host began.
        Waits at most `within` seconds for them to be reaped; returns how many were killed.
        """
        killed = set()
        for pid, state in self._adopted(time.monotonic()):
            if state in ("Z", "X") or pid in self._before:
                continue
            host, _ = service_of(pid)
            if host is not None and host != self.tag:
                continue
            with contextlib.suppress(OSError):  # gone, or not ours to kill (another uid)
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            look = dict(self._adopted(time.monotonic()))
            if not killed & look.keys():
                break
            if not self.reap_zombies(time.monotonic()):
                await asyncio.sleep(0.005)  # SIGKILLed, not dead yet: not for long
        return len(killed)

    def _owner(self, pid: int) -> str | None:
        """The service an adopted child of this host belongs to (None: not of this host)."""
        owner = self.adopted.get(pid)
        if owner is None:
            host, owner = service_of(pid)
            if host != self.tag or owner is None:
                return None
            self.adopted[pid] = owner
        return owner


def _reap(pid: int) -> int:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return 0
    return 1 if done else 0
