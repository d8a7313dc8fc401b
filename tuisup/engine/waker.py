"""Provides DependencyWaker: the observer that tells services their dependencies changed.

It follows the Host's bus like any other observer (the console, the printer), and acts on
what it reads:

- a service's state or health changed: the services waiting for it look again;
- a service with `restart_dependents` starts again: its running dependents restart;
- a service runs: once it has run for STARTED_AFTER seconds, the services that wait for it
  to be `started` look again (once per run, so an idle host keeps no timer);
- events went unseen (`missed`): every waiting service looks again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup, TaskStatus

from tuisup.engine.deps import STARTED_AFTER
from tuisup.engine.events import HealthChanged, Missed, ServiceState, StateChanged
from tuisup.engine.messages import Restart

if TYPE_CHECKING:
    from tuisup.engine.host import Host

S = ServiceState


class DependencyWaker:
    """Wakes the dependents of each service whose state or health changed."""

    def __init__(self, host: Host, tg: TaskGroup) -> None:
        self._host = host
        self._tg = tg

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Follow the bus from now on, until cancelled."""
        host = self._host
        stream = host.bus.stream(host.bus.last_seq)
        task_status.started()
        async for batch in stream:
            if host.stopping:
                return  # nothing starts any more
            for event in batch:
                if isinstance(event, StateChanged):
                    self._state_changed(event.service, event.state)
                elif isinstance(event, HealthChanged):
                    self.wake_dependents(event.service)
                elif isinstance(event, Missed):
                    self._wake_all()

    def _state_changed(self, name: str, state: ServiceState) -> None:
        host = self._host
        sup = host.supervisors.get(name)
        if sup is None:
            return  # it left the manifest
        self.wake_dependents(name)
        if state is S.STARTING and sup.spec.restart_dependents:
            for dependent in host.graph.dependents.get(name, ()):
                other = host.supervisors.get(dependent)
                if other is not None and other.state is S.RUNNING:
                    host.store.marker(dependent, f"tuisup: {name} restarts: restarting it too")
                    host.post(dependent, Restart())
        if state is S.RUNNING and host.graph.waits_started(name):
            started = sup.started
            self._tg.start_soon(self._look_again, name, started, STARTED_AFTER - sup.uptime())

    def wake_dependents(self, name: str) -> None:
        """Have the services waiting for `name` look at their dependencies again."""
        host = self._host
        for dependent in host.graph.dependents.get(name, ()):
            other = host.supervisors.get(dependent)
            if other is not None and other.state is S.WAITING:
                other.dependencies_changed()

    def _wake_all(self) -> None:
        for sup in self._host.supervisors.values():
            if sup.state is S.WAITING:
                sup.dependencies_changed()

    async def _look_again(self, name: str, started: float | None, delay: float) -> None:
        """Once `name` has run long enough to count as `started`, tell its dependents."""
        host = self._host
        await host.clock.sleep(max(0.0, delay))
        sup = host.supervisors.get(name)
        if sup is None or host.stopping:
            return
        if sup.state is S.RUNNING and sup.started == started:
            self.wake_dependents(name)
