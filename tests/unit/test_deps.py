"""The dependency graph's orders: what starts first, what stops first."""

from __future__ import annotations

from pathlib import Path

from tuisup.engine.deps import Graph
from tuisup.engine.events import Bus
from tuisup.engine.executors import ProcessExecutor
from tuisup.engine.logs import LogStore
from tuisup.engine.reaper import Reaper
from tuisup.engine.supervisor import Supervisor
from tuisup.spec import Condition, ServiceSpec


def specs(**needs: dict[str, Condition]) -> dict[str, ServiceSpec]:
    return {
        name: ServiceSpec(
            name=name, argv=("true",), command="true", cwd=Path("/"), depends_on=depends_on
        )
        for name, depends_on in needs.items()
    }


def supervisors(services: dict[str, ServiceSpec]) -> dict[str, Supervisor]:
    bus, logs, executor = (
        Bus(),
        LogStore(100, None, lambda batch: None),
        ProcessExecutor(Reaper(), Path("/")),
    )
    return {name: Supervisor(spec, executor, bus, logs) for name, spec in services.items()}


def test_starts_keep_the_order_given_with_dependencies_first() -> None:
    started = Condition.STARTED
    names = [f"s{i}" for i in range(16)]
    services = specs(**{name: {} for name in names}, api={"db": started}, db={})
    order = Graph(services).to_start([*names, "api"], supervisors(services))
    assert order == [*names, "db", "api"]


def test_dependents_are_found_through_the_chain() -> None:
    started = Condition.STARTED
    services = specs(db={}, api={"db": started}, web={"api": started}, other={})
    graph = Graph(services)
    assert graph.with_dependents("db") == ["db", "api", "web"]
    assert graph.with_dependencies(["web"]) == ["db", "api", "web"]
    assert graph.with_dependents("other") == ["other"]
