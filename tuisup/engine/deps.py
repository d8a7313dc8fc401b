"""Provides the dependency graph: whether a service may start, and in which order to stop.

The manifest guarantees the graph names only services it has and has no cycle. A
dependency's condition is judged from its supervisor alone:

- `started`: it has been running for STARTED_AFTER seconds (one that dies at once does
  not count), or it ran and ended with success;
- `healthy`: it runs and its health check passed;
- `completed`: it ended by itself with a success exit code.

A condition that can no longer hold without someone starting the dependency again (it
`failed`, or ended in a way that rules the condition out) blocks the dependent for good.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import anyio

from tuisup.engine.events import Health, ServiceState
from tuisup.engine.status import ACTIVE
from tuisup.model.record import Record
from tuisup.spec import Condition, ServiceSpec

if TYPE_CHECKING:
    from tuisup.engine.supervisor import Supervisor

STARTED_AFTER = 1.0
"""Seconds a dependency must stay up to count as `started` (supervisord's `startsecs`)."""

S = ServiceState


class Verdict(Record):
    """Whether a service may start now: it may, it must wait (and for what), or it cannot."""

    waiting: str | None = None
    """What it waits for, e.g. `db to be healthy (starting)`."""
    waiting_for: tuple[str, ...] = ()
    """The dependencies it waits for."""
    blocked: str | None = None
    """Why it cannot start until a dependency is started again."""
    refused: bool = False
    """No service starts now: the host is shutting down. The service stays as it is."""


READY = Verdict()
REFUSED = Verdict(refused=True)


class Graph:
    """Who depends on whom, built from the manifest's specs."""

    def __init__(self, specs: Mapping[str, ServiceSpec]) -> None:
        # A dependency on a replicated service is one on each of its replicas (none for 0).
        instances: dict[str, list[str]] = {}
        for name, spec in specs.items():
            instances.setdefault(spec.declared, []).append(name)
        self.needs = {
            name: {
                instance: condition
                for dep, condition in spec.depends_on.items()
                for instance in instances.get(dep, ())
            }
            for name, spec in specs.items()
        }
        self.dependents: dict[str, list[str]] = {name: [] for name in specs}
        for name, needs in self.needs.items():
            for dep in needs:
                self.dependents[dep].append(name)

    def verdict(self, name: str, supervisors: Mapping[str, Supervisor]) -> Verdict:
        """Judge `name`'s dependencies, in the order they were written.

        A dependency that failed, but whose start is on its way (`start_pending`), makes
        its dependent wait instead of failing.
        """
        waits: dict[str, str] = {}
        for dep, condition in self.needs.get(name, {}).items():
            holds, why = judge(condition, supervisors[dep])
            if holds is None and supervisors[dep].start_pending:
                holds, why = False, f"{dep} to start again ({supervisors[dep].state})"
            if holds is None:
                return Verdict(blocked=f"dependency {why}")
            if not holds:
                waits[dep] = why
        if not waits:
            return READY
        return Verdict(waiting=", ".join(waits.values()), waiting_for=tuple(waits))

    def with_dependencies(self, names: Iterable[str]) -> list[str]:
        """Return `names` and everything they depend on, dependencies before dependents."""
        order: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            for dep in self.needs.get(name, {}):
                visit(dep)
            order.append(name)

        for name in names:
            visit(name)
        return order

    def with_dependents(self, name: str) -> list[str]:
        """Return `name` and every service that depends on it, directly or not."""
        found = [name]
        for current in found:
            found.extend(d for d in self.dependents.get(current, ()) if d not in found)
        return found

    def to_start(self, names: Iterable[str], supervisors: Mapping[str, Supervisor]) -> list[str]:
        """Return `names` and the dependencies they need started, dependencies first.

        A dependency is started unless it is up (or coming up), or it completed.
        """
        names = list(names)
        wanted = set(names)
        return [
            name
            for name in self.with_dependencies(names)  # in the order given, not a set's
            if name in wanted or _needs_start(supervisors[name])
        ]

    async def stop(self, supervisors: Mapping[str, Supervisor]) -> None:
        """Stop `supervisors` concurrently, each once its dependents among them stopped."""
        done = {name: anyio.Event() for name in supervisors}

        async def stop(name: str) -> None:
            for dependent in self.dependents.get(name, ()):
                if dependent in done:
                    await done[dependent].wait()
            try:
                await supervisors[name].stop()
            finally:
                done[name].set()

        async with anyio.create_task_group() as tg:
            for name in supervisors:
                tg.start_soon(stop, name)

    def waits_started(self, name: str) -> bool:
        """Whether a dependent waits for `name` to be `started` (which takes time to hold)."""
        return any(self.needs[d][name] is Condition.STARTED for d in self.dependents.get(name, ()))


def judge(condition: Condition, dep: Supervisor) -> tuple[bool | None, str]:
    """Return (True: holds | False: not yet | None: cannot hold, the words for it)."""
    name, state = dep.spec.name, dep.state
    if state is S.FAILED:
        return None, f"{name} failed: {dep.reason}"
    if state is S.EXITED:
        how = dep.history[-1].status.describe() if dep.history else "?"
        if condition is Condition.HEALTHY:
            return None, f"{name} exited with {how}: it will not become healthy"
        return (True, "") if _completed(dep) else (None, f"{name} exited with {how}")
    match condition:
        case Condition.STARTED:
            if state is S.RUNNING and dep.uptime() >= STARTED_AFTER:
                return True, ""
            return False, f"{name} to start ({_doing(dep)})"
        case Condition.HEALTHY:
            if state is S.RUNNING and dep.health is Health.HEALTHY:
                return True, ""
            return False, f"{name} to be healthy ({_doing(dep)})"
        case Condition.COMPLETED:
            return False, f"{name} to complete ({_doing(dep)})"
    raise AssertionError(condition)


def _needs_start(sup: Supervisor) -> bool:
    return sup.state not in ACTIVE and not _completed(sup)


def _completed(sup: Supervisor) -> bool:
    """Whether it ended by itself, for good, with a success exit code."""
    last = sup.history[-1] if sup.history else None
    return (
        sup.state is S.EXITED
        and last is not None
        and last.status.succeeded(sup.spec.success_exit_codes)
    )


def _doing(dep: Supervisor) -> str:
    if dep.state is S.RUNNING and dep.spec.healthcheck is not None:
        return (
            "running, health unknown" if dep.health is Health.UNKNOWN else f"running, {dep.health}"
        )
    return str(dep.state)
