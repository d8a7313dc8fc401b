"""Provides HookRunner: the observer that runs a service's hooks (its `on` table) on its events.

It follows the Host's bus like the DependencyWaker does, and never calls into a
supervisor's actor, so a restart never waits for a hook. Each run of a hook:

- is a `Leader` (`engine.spawn`) in the service's cwd, with the service's environment and
  tags (the lifeline and the sweeps cover it) plus the event's `TUISUP_*` variables;
- writes its output, stdout and stderr merged, to the service's log with stream `hook`;
- is bounded by the service's `hook_timeout`; however it ends, its whole group is killed
  and it is reaped, as a health-check command is;
- ends with one line in the service's log and a `hook` event (`HookRan`), failed or not;
  a failed run is never retried.

A hook runs once at a time per service. The events that come while it runs are counted
and the latest is kept; when the run ends, one more run follows for them, with that event
and their count (`TUISUP_COALESCED`): a burst of 100 crashes costs two runs, not 100 forks.
"""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup, TaskStatus

from tuisup.engine.events import (
    Event,
    FilesChanged,
    Health,
    HealthChanged,
    HookRan,
    ManifestReloaded,
    Missed,
    RestartScheduled,
    Scaled,
    ServiceState,
    StateChanged,
)
from tuisup.engine.executors.process import await_command, service_env, spawn_command
from tuisup.engine.logs import StreamSink
from tuisup.engine.spawn import Leader
from tuisup.spec import Hook, HookEvent, ServiceSpec
from tuisup.terminal import json_text

if TYPE_CHECKING:
    from tuisup.engine.host import Host

S = ServiceState

HOOK_STREAM = "hook"
"""The stream of a hook's output in its service's log."""
_ENDED_BY_ITSELF = frozenset({S.EXITED, S.BACKOFF, S.FAILED})
"""States a run that ended by itself leads to (a stop leads to `stopped`)."""
_HEALTH_HOOKS = {Health.HEALTHY: HookEvent.HEALTHY, Health.UNHEALTHY: HookEvent.UNHEALTHY}


def hooks_of(event: Event) -> tuple[str, list[HookEvent]] | None:
    """The service an event is about and the hooks it runs; None when it runs none."""
    if isinstance(event, StateChanged):
        return event.service, _state_hooks(event)
    if isinstance(event, RestartScheduled):
        return event.service, [HookEvent.RESTARTING]
    if isinstance(event, HealthChanged) and event.health in _HEALTH_HOOKS:
        return event.service, [_HEALTH_HOOKS[event.health]]
    if isinstance(event, FilesChanged):
        return event.service, [HookEvent.FILES_CHANGED]
    return None


def _state_hooks(event: StateChanged) -> list[HookEvent]:
    hooks = []
    if event.state is S.RUNNING:
        hooks.append(HookEvent.STARTED)
    if event.old is S.RUNNING and event.state in _ENDED_BY_ITSELF and event.runtime is not None:
        hooks.append(HookEvent.EXITED)
    if event.state is S.FAILED:
        hooks.append(HookEvent.FAILED)
    if event.state is S.STOPPED:
        hooks.append(HookEvent.STOPPED)
    return hooks


def hook_env(key: HookEvent, event: Event, state: ServiceState, count: int) -> dict[str, str]:
    """The variables a run gets on top of its service's environment."""
    env = {
        "TUISUP_HOOK": str(key),
        "TUISUP_EVENT": json_text(event.to_json()),
        "TUISUP_STATE": str(state),
        "TUISUP_COALESCED": str(count),
    }
    reason = None
    if isinstance(event, StateChanged):
        if event.exit_code is not None:
            env["TUISUP_EXIT_CODE"] = str(event.exit_code)
        if event.signal is not None:
            env["TUISUP_SIGNAL"] = str(event.signal)
        reason = event.reason or event.error
    elif isinstance(event, HealthChanged):
        reason = event.reason
    elif isinstance(event, FilesChanged):
        reason = event.paused
    if reason:
        env["TUISUP_REASON"] = reason.replace("\0", "")  # no variable can hold a NUL
    return env


class _Slot:
    """One hook of one service with a run in flight, and the events that came meanwhile."""

    __slots__ = ("count", "event", "state")

    def __init__(self) -> None:
        self.event: Event | None = None
        """The latest event not run for yet."""
        self.state = S.STOPPED
        """The service's state at that event."""
        self.count = 0
        """How many events came since the last run began."""


class HookRunner:
    """Runs each service's hooks on its events, one run per hook at a time, bounded."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self._tg: TaskGroup | None = None
        self._cursor = 0
        """The last event looked at."""
        self._slots: dict[tuple[str, HookEvent], _Slot] = {}
        """The hooks with a run in flight (or about to start one)."""
        self._states: dict[str, ServiceState] = {}
        """Each service's state as of the last event looked at (not as of now)."""
        self._leaders: set[Leader] = set()
        """The processes of the runs in flight."""
        self._idle: anyio.Event | None = None
        self._halted = False
        """Set once every run was killed: nothing runs any more."""

    async def run(
        self, tg: TaskGroup, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Follow the bus from now on, running hooks in `tg`, until cancelled."""
        bus = self._host.bus
        self._tg = tg
        self._cursor = bus.last_seq
        task_status.started()
        while True:
            await bus.wait_after(self._cursor)
            self.catch_up()

    def catch_up(self) -> None:
        """Start the hooks of every event not looked at yet."""
        for event in self._host.bus.since(self._cursor):
            self._cursor = event.seq
            if isinstance(event, StateChanged):
                self._states[event.service] = event.state
            elif isinstance(event, ManifestReloaded | Scaled):
                for name in event.removed:  # one made again under its name starts afresh
                    self._states.pop(name, None)
            elif isinstance(event, Missed):
                self._states.clear()  # unseen changes: each service's state as it is now
            found = hooks_of(event)
            if found is not None:
                for key in found[1]:
                    self._fire(found[0], key, event)

    def _fire(self, service: str, key: HookEvent, event: Event) -> None:
        sup = self._host.supervisors.get(service)
        if self._tg is None or self._halted or sup is None or key not in sup.spec.hooks:
            return
        slot = self._slots.get((service, key))
        if slot is None:  # none in flight: one starts (otherwise, this event waits for it)
            slot = self._slots[service, key] = _Slot()
            self._tg.start_soon(self._serve, service, key, slot)
        slot.event = event
        slot.state = self._states.get(service, sup.state)
        slot.count += 1

    async def _serve(self, service: str, key: HookEvent, slot: _Slot) -> None:
        """Run a hook until no event is left for it: the latest one, each time."""
        try:
            while slot.event is not None and not self._halted:
                event, state, count = slot.event, slot.state, slot.count
                slot.event, slot.count = None, 0
                sup = self._host.supervisors.get(service)
                hook = sup.spec.hooks.get(key) if sup is not None else None
                if sup is None or hook is None:
                    return  # the service, or this hook, left the manifest meanwhile
                await self._run(sup.spec, key, hook, hook_env(key, event, state, count), count)
        finally:
            del self._slots[service, key]
            if not self._slots and self._idle is not None:
                self._idle.set()

    async def _run(
        self, spec: ServiceSpec, key: HookEvent, hook: Hook, env: dict[str, str], count: int
    ) -> None:
        """Run a hook once, its output to the service's log, and report how it ended."""
        began = time.monotonic()
        reaper = self._host.reaper
        full_env = {**service_env(spec, reaper, self._host.env), **env}
        try:
            leader, read_fd = spawn_command(hook.argv, spec, full_env, reaper)
        except OSError as exc:
            self._report(spec, key, hook, count, 0.0, error=f"cannot run: {_why(exc)}")
            return
        self._leaders.add(leader)
        sink = StreamSink(self._host.store, spec.name, HOOK_STREAM)
        try:
            code, timed_out = await await_command(leader, read_fd, sink.write, spec.hook_timeout)
        finally:
            sink.close()
            self._leaders.discard(leader)
        runtime = time.monotonic() - began
        if code is None:
            self._report(spec, key, hook, count, runtime, error="did not end after SIGKILL")
        else:
            self._report(spec, key, hook, count, runtime, code=code, timed_out=timed_out)

    def _report(
        self,
        spec: ServiceSpec,
        key: HookEvent,
        hook: Hook,
        count: int,
        runtime: float,
        *,
        code: int | None = None,
        error: str | None = None,
        timed_out: bool = False,
    ) -> None:
        host = self._host
        service = spec.name
        event = host.bus.emit(
            HookRan,
            service=service,
            hook=str(key),
            command=hook.command,
            exit_code=code if code is not None and code >= 0 else None,
            signal=-code if code is not None and code < 0 else None,
            error=error,
            timed_out=timed_out,
            timeout=spec.hook_timeout,
            runtime=round(runtime, 3),
            coalesced=count,
        )
        if service in host.supervisors:  # one that left has had its log let go of
            host.store.marker(service, f"tuisup: {event.describe()}")

    def halt(self) -> None:
        """Kill every run in flight now, and run no hook any more (a second Ctrl-C)."""
        self._halted = True
        for leader in self._leaders:
            leader.signal_group(signal.SIGKILL)

    async def settle(self) -> None:
        """Start the hooks of every event so far, and wait until no run is left.

        The shutdown waits here for the hooks its own events run (`stopped`), each bounded
        by its `hook_timeout`.
        """
        self.catch_up()
        while self._slots:
            self._idle = anyio.Event()
            await self._idle.wait()


def _why(error: OSError) -> str:
    """`No such file or directory: ./dump.sh`: what went wrong, and with what."""
    if error.strerror and error.filename:
        return f"{error.strerror}: {error.filename}"
    return error.strerror or str(error)
