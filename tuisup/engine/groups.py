"""Provides Groups: the observer that restarts a group's members together (OTP's strategies).

Each member keeps its own supervisor, policy and backoff; a group only watches them. It
follows the bus like the DependencyWaker, and when a member fails (its own policy sends it
to `backoff`: the run ended and is to be restarted) it:

- counts one restart of the group; more than `max_restarts` within `restart_window` and
  the group gives up: `group_failed`, then its members are stopped, or (`on_failure =
  "shutdown"`) the host shuts down;
- else announces `group_restart` and, for `one_for_all` and `rest_for_one`, stops the other
  members to restart (in reverse order, each bounded by its own `stop_timeout`), then starts
  them again in order: each through the dependency gate, and the failed one by its own
  backoff, awaited in its place.

A member that is not running (stopped by hand, ended) and a member whose policy is
`never` are left alone by a sibling's failure. A member that goes `failed` fails its group.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup, TaskStatus

from tuisup.engine.events import GroupFailed, GroupRestarting, Missed, ServiceState, StateChanged
from tuisup.engine.messages import Start, Stop
from tuisup.engine.status import ACTIVE
from tuisup.spec import GroupFailure, GroupSpec, GroupStrategy, RestartPolicy

if TYPE_CHECKING:
    from tuisup.engine.host import Host

S = ServiceState
COMING_BACK = frozenset({S.BACKOFF, S.STARTING})
"""The states of a failed member on its way back by itself."""
NEVER = RestartPolicy.NEVER


class Group:
    """One group's budget and restarts."""

    def __init__(self, host: Host, spec: GroupSpec, tg: TaskGroup) -> None:
        self.spec = spec
        self.failed: str | None = None
        """Why the group gave up; None while it is not failed."""
        self._host = host
        self._tg = tg
        self._times: deque[float] = deque()
        """When each restart counted in the window happened (monotonic)."""
        self._lock = anyio.Lock()
        """One restart (or group command) at a time."""
        self._absorbing: set[str] = set()
        """Members a restart under way will restart anyway: their own failures meanwhile
        are part of it, not restarts of their own (a consumer that loses its broker)."""
        self._moved = anyio.Event()
        self._stopping = False
        self._stops = 0
        """Stops of the whole group asked for: a restart under way that sees this move
        gives up, instead of starting what was just stopped."""

    @property
    def members(self) -> list[str]:
        """Its members' services, in start order (each replica of a replicated one)."""
        return self._host.manifest.members(self.spec)

    def look_again(self) -> None:
        """Have a restart waiting for a member's backoff look at it again."""
        self._moved.set()

    def changed(self, event: StateChanged) -> None:
        """A member's state changed: judge it (the observer calls this)."""
        self.look_again()
        name, state = event.service, event.state
        if self.failed is not None:
            if state is S.RUNNING and not self._stopping:
                self.revive()  # started again by hand
            return
        if name in self._absorbing or self._host.stopping:
            return
        if state is S.BACKOFF:
            self._failure(name)
        elif state is S.FAILED and event.old is not S.FAILED:
            self._give_up(f"group {self.spec.name}: {name} failed: {event.reason}")

    def revive(self) -> None:
        """Take the group back from `failed`, its budget afresh."""
        self.failed = None
        self._times.clear()

    def _failure(self, name: str) -> None:
        now = self._host.clock.monotonic()
        window = self.spec.restart_window
        self._times.append(now)
        while self._times and self._times[0] <= now - window:
            self._times.popleft()
        if len(self._times) > self.spec.max_restarts:
            self._give_up(f"group {self.spec.name}: {len(self._times)} restarts in {window:g}s")
            return
        restarting = self._chosen(name)
        self._host.bus.emit(
            GroupRestarting,
            group=self.spec.name,
            service=name,
            restarting=tuple(restarting),
            strategy=str(self.spec.strategy),
            restarts=len(self._times),
        )
        if len(restarting) > 1:
            self._absorbing.update(restarting)
            self._tg.start_soon(self._restart, name, restarting)

    def _chosen(self, name: str) -> list[str]:
        """The members a failure of `name` restarts, in start order."""
        members = self.members
        if self.spec.strategy is GroupStrategy.ONE_FOR_ONE or name not in members:
            return [name]
        if self.spec.strategy is GroupStrategy.REST_FOR_ONE:
            members = members[members.index(name) :]
        sups = self._host.supervisors
        return [
            m
            for m in members
            if m == name
            or (m in sups and sups[m].state in ACTIVE and sups[m].spec.restart is not NEVER)
        ]

    async def _restart(self, name: str, restarting: list[str]) -> None:
        """Stop the others in reverse order, then start all in order (`name` by itself)."""
        host = self._host
        stops = self._stops
        try:
            async with self._lock:
                for other in reversed(restarting):
                    if other != name and other in host.supervisors:
                        await host.supervisors[other].stop()
                for member in restarting:
                    if self.failed is not None or host.stopping or self._stops != stops:
                        return
                    if member == name:
                        await self._back(member, stops)
                    elif member in host.supervisors:
                        await host.post(member, Start()).wait()
                    self._absorbing.discard(member)
        finally:
            self._absorbing.difference_update(restarting)

    async def _back(self, name: str, stops: int) -> None:
        """Wait until the failed member's own backoff brought it back (or not), or a stop."""
        while (sup := self._host.supervisors.get(name)) is not None and sup.state in COMING_BACK:
            if self._stops != stops:
                return
            moved = self._moved = anyio.Event()
            await moved.wait()

    def _give_up(self, reason: str) -> None:
        host = self._host
        self.failed = reason
        on_failure = self.spec.on_failure
        host.bus.emit(GroupFailed, group=self.spec.name, reason=reason, on_failure=str(on_failure))
        members = [m for m in self.members if m in host.supervisors]
        doing = "stopping tuisup" if on_failure is GroupFailure.SHUTDOWN else "stopping it"
        for member in members:
            host.store.marker(member, f"tuisup: {reason}: {doing}")
        if on_failure is GroupFailure.SHUTDOWN:
            self._tg.start_soon(host.shutdown, reason)
            return
        # Posted now: a member's pending retry then starts nothing (a stop is queued).
        stops = [host.post(member, Stop()) for member in reversed(members)]
        self._stopping = True
        self._tg.start_soon(self._stopped, stops)

    async def _stopped(self, stops: list[anyio.Event]) -> None:
        try:
            for done in stops:
                await done.wait()
        finally:
            self._stopping = False

    # -- commands on the whole group (s, x, r on its node) --------------------------------

    async def start(self) -> None:
        """Start the members in order, each once the one before is handled; revives it."""
        async with self._lock:
            self.revive()
            for member in self.members:
                await self._host.start(member)

    async def stop(self) -> None:
        """Stop the members in reverse order (and, first, what depends on each).

        Not after a restart under way, which may wait for a long backoff: that restart
        gives up (see `_restart`), and a member waiting for its backoff is stopped with it.
        """
        self._stops += 1
        self.look_again()
        for member in reversed(self.members):
            await self._host.stop(member)

    async def restart(self) -> None:
        """Stop the members in reverse order, then start them in order."""
        await self.stop()
        await self.start()


class Groups:
    """Follows the bus and hands each member's state changes to its group."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self.groups: dict[str, Group] = {}
        self._tg: TaskGroup | None = None

    @property
    def failed(self) -> dict[str, str]:
        """Why each group that gave up did."""
        return {name: g.failed for name, g in self.groups.items() if g.failed is not None}

    def take(self, specs: Mapping[str, GroupSpec]) -> None:
        """Follow the groups of a (re)loaded manifest: a group that stayed keeps its budget."""
        assert self._tg is not None
        groups = {}
        for name, spec in specs.items():
            group = groups[name] = self.groups.get(name) or Group(self._host, spec, self._tg)
            group.spec = spec
        self.groups = groups

    async def run(
        self, tg: TaskGroup, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Follow the bus from now on, until cancelled."""
        self._tg = tg
        self.take(self._host.manifest.groups)
        host = self._host
        stream = host.bus.stream(host.bus.last_seq)
        task_status.started()
        async for batch in stream:
            if not self.groups:
                continue
            for event in batch:
                if isinstance(event, StateChanged) and event.group in self.groups:
                    self.groups[event.group].changed(event)
                elif isinstance(event, Missed):
                    for group in self.groups.values():
                        group.look_again()  # what moved went unseen
