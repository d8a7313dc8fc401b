"""Provides replicas and ports: a table with `replicas` or `port` made into its instances.

A table with `replicas = N` is N services, `NAME.0` to `NAME.N-1` (a declared name never
holds a `.`, so no instance can take a declared name). `{replica}` (the index) and `{port}`
(`port` plus the index) are put into its `command`, `env` values and `healthcheck` before
each instance is checked like any table. Processes get `TUISUP_REPLICA` and `PORT`, and every
service gets `TUISUP_PORT_<NAME>` for each table with a `port`, so no two such tables may
make one variable (`a-b` and `a_b`, `web` and `WEB`). The ports of all tables and replicas
must not overlap.

The same expansion serves scaling while running (`Host.scale`): a `Template` keeps the
table, and `instances` makes the specs of any count from it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from tuisup.manifest import checks
from tuisup.manifest.locator import Key
from tuisup.manifest.problems import INVALID, Checker, Invalid, describe
from tuisup.model.record import replace
from tuisup.spec import ServiceSpec, Template

Make = Callable[[Checker, str, object], ServiceSpec | Invalid]
"""Checks one table (as the loader does) and makes its spec, under its declared name."""

PLACES = re.compile(r"\{(replica|port)\}")
"""`{replica}` and `{port}`, each the word it stands for."""
FILLED = ("command", "env", "healthcheck")
"""The keys whose strings take `{replica}` and `{port}`."""
MAX_REPLICAS = 1000
REPLICA = "TUISUP_REPLICA"
"""The variable of a replica's index."""

replicas_check = checks.integer(0)


def port(ck: Checker, path: Key, raw: object) -> int | Invalid:
    """Check a TCP port, 1 to 65535."""
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= 65535:
        return ck.fail(path, f"expected a port from 1 to 65535, got {describe(raw)}")
    return raw


def replicas(ck: Checker, path: Key, raw: object) -> int | Invalid:
    """Check a replica count, 0 to MAX_REPLICAS."""
    count = replicas_check(ck, path, raw)
    if not isinstance(count, int):
        return INVALID
    if count > MAX_REPLICAS:
        return ck.fail(path, f"expected at most {MAX_REPLICAS} replicas, got {count}")
    return count


def port_env(templates: Mapping[str, Template]) -> dict[str, str]:
    """`TUISUP_PORT_<NAME>` for each table with a `port`: its first instance's port."""
    return {port_variable(name): str(t.port) for name, t in templates.items() if t.port is not None}


def port_variable(name: str) -> str:
    """The variable that holds a table's port for every service: `TUISUP_PORT_<NAME>`."""
    return f"TUISUP_PORT_{name.upper().replace('-', '_')}"


def instances(
    ck: Checker, template: Template, count: int | None, env: Mapping[str, str], make: Make
) -> list[ServiceSpec] | Invalid:
    """Make the specs of `count` instances of a table (None: the table is not replicated).

    Each instance is checked as a table of its own; the first that has problems stops
    the rest, so a mistake is reported once, not once per replica. With no instance at
    all, the table is checked all the same.
    """
    made: list[ServiceSpec] = []
    for i in range(max(1, count or 0)):
        own = None if template.port is None else template.port + i
        if own is not None and own > 65535:
            return INVALID  # check_ports says so
        spec = make(ck, template.name, fill(template.table, i, own))
        if spec is INVALID:
            return INVALID
        made.append(instance(spec, i if count is not None else None, own, env))
    return made if count != 0 else []


def instance(
    spec: ServiceSpec, replica: int | None, own: int | None, env: Mapping[str, str]
) -> ServiceSpec:
    """The spec of one instance: its name, replica, port and variables."""
    name = spec.name if replica is None else f"{spec.name}.{replica}"
    return replace(
        spec, name=name, replica=replica, port=own, env=with_env(spec, env, replica, own)
    )


def with_env(
    spec: ServiceSpec, ports: Mapping[str, str], replica: int | None, own: int | None
) -> Mapping[str, str]:
    """A process's variables: the ports of all, its replica and port, then its own `env`."""
    given = tuisup_given(spec, ports, replica, own)
    return {**given, **spec.env} if given else spec.env


def tuisup_given(
    spec: ServiceSpec, ports: Mapping[str, str], replica: int | None, own: int | None
) -> dict[str, str]:
    """The variables tuisup itself gives a process: the ports of all, its replica and port.

    A service that runs inside tuisup shares tuisup's environment: it gets none of them.
    """
    if spec.in_process:
        return {}
    given: dict[str, str] = dict(ports)
    if replica is not None:
        given[REPLICA] = str(replica)
    if own is not None:
        given["PORT"] = str(own)
    return given


def fill(table: Mapping[str, object], replica: int, own: int | None) -> dict[str, object]:
    """The table with `{replica}` and `{port}` put into its command, env and health check."""
    values = {"replica": str(replica), "port": "" if own is None else str(own)}
    return {key: filled(value, values) if key in FILLED else value for key, value in table.items()}


def filled(value: Any, values: Mapping[str, str]) -> Any:
    """`value` with `{replica}` and `{port}` put in from `values`, through lists and tables."""
    if isinstance(value, str):
        return PLACES.sub(lambda m: values[m[1]], value)
    if isinstance(value, list):
        return [filled(item, values) for item in value]
    if isinstance(value, dict):
        return {key: filled(item, values) for key, item in value.items()}
    return value


def check_placeholders(ck: Checker, name: str, table: Mapping[str, object]) -> None:
    """`{port}` needs a `port`: without one it would be put in as nothing."""
    if "port" in table:
        return
    for key in FILLED:
        if key in table and "{port}" in repr(table[key]):
            ck.fail(("services", name, key), "uses {port}, but the service has no port key")


def ranges(templates: Mapping[str, Template]) -> dict[str, range]:
    """The ports each table's instances take."""
    return {
        name: range(t.port, t.port + (1 if t.replicas is None else t.replicas))
        for name, t in templates.items()
        if t.port is not None
    }


def overlaps(taken: Mapping[str, range]) -> list[tuple[str, str]]:
    """Each pair of tables whose ports overlap: (the later one, the earlier one)."""
    found: list[tuple[str, str]] = []
    names = list(taken)
    for i, name in enumerate(names):
        mine = taken[name]
        for other in names[:i]:
            theirs = taken[other]
            if mine and theirs and mine.start < theirs.stop and theirs.start < mine.stop:
                found.append((name, other))
    return found


def shown(ports: range) -> str:
    """`8000` or `8000-8002`."""
    return str(ports.start) if len(ports) == 1 else f"{ports.start}-{ports.stop - 1}"


def check_port_variables(ck: Checker, templates: Mapping[str, Template]) -> None:
    """Report a table whose `TUISUP_PORT_<NAME>` an earlier one makes, at its `port` key.

    Each would set the other's: every service would see only one of their ports.
    """
    owners: dict[str, str] = {}
    for name, template in templates.items():
        if template.port is None:
            continue
        variable = port_variable(name)
        other = owners.setdefault(variable, name)
        if other != name:
            line = ck.where.find(("services", other, "port"))[0]
            message = f"its variable {variable} is {other}'s too (line {line}): rename one of them"
            ck.fail(("services", name, "port"), message)


def check_ports(ck: Checker, templates: Mapping[str, Template]) -> None:
    """Report ports past 65535, and tables whose ports overlap, at the later `port` key."""
    taken = ranges(templates)
    for name, ports in taken.items():
        if ports and ports.stop - 1 > 65535:
            ck.fail(("services", name, "port"), f"its replicas' ports {shown(ports)} pass 65535")
    for name, other in overlaps(taken):
        line = ck.where.find(("services", other, "port"))[0]
        message = (
            f"ports {shown(taken[name])} overlap {other}'s {shown(taken[other])} (line {line})"
        )
        ck.fail(("services", name, "port"), message)
