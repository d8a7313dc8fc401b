"""Provides the manifest checks of dependencies and health checks.

`depends_on` and `healthcheck` are checked per service like any value; what only the whole
manifest can tell (unknown names, cycles, a `healthy` condition on a service without a
health check) is checked by `check_graph` once every service has been read.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

from tuisup.manifest import checks
from tuisup.manifest.locator import Key
from tuisup.manifest.problems import (
    INVALID,
    Checker,
    Invalid,
    describe,
    quote,
    unknown_service,
)
from tuisup.spec import Condition, HealthCheck, HealthKind

_KINDS = tuple(k.value for k in HealthKind)
_TIMING: dict[str, checks.Check] = {
    "interval": checks.number(0, above=True),
    "timeout": checks.number(0, above=True),
    "retries": checks.integer(1),
    "start_period": checks.number(0),
}
_HEALTH_KEYS = (*_KINDS, *_TIMING, "status")


def depends_on(ck: Checker, path: Key, raw: object) -> dict[str, Condition] | Invalid:
    """`["db"]` (each `started`) or `{ db = "healthy", migrate = "completed" }`."""
    if isinstance(raw, list):
        names: dict[str, Condition] = {}
        for i, item in enumerate(raw):
            if not isinstance(item, str):
                ck.fail((*path, i), f"expected a service name, got {describe(item)}")
            elif item in names:
                ck.fail((*path, i), f"{quote(item)} is listed twice")
            else:
                names[item] = Condition.STARTED
        return names if len(names) == len(raw) else INVALID
    if not isinstance(raw, dict):
        return ck.fail(path, f"expected an array of service names or a table, got {describe(raw)}")
    conditions: dict[str, Condition] = {}
    for name, value in raw.items():
        condition = checks.one_of(ck, (*path, name), value, Condition)
        if condition is not INVALID:
            conditions[name] = condition
    return conditions if len(conditions) == len(raw) else INVALID


def healthcheck(ck: Checker, path: Key, raw: object) -> HealthCheck | Invalid:
    """`{ command = "…" }`, `{ tcp = 5432 }` or `{ http = "http://…" }`, with timings."""
    table = checks.table(ck, path, raw)
    if table is INVALID:
        return INVALID
    before = len(ck.problems)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key in _TIMING:
            values[key] = _TIMING[key](ck, (*path, key), value)
        elif key not in _HEALTH_KEYS:
            ck.unknown((*path, key), _HEALTH_KEYS)
    kinds = [key for key in _KINDS if key in table]
    if len(kinds) != 1:
        got = "none" if not kinds else " and ".join(kinds)
        return ck.fail(path, f"expected exactly one of command, tcp or http, got {got}")
    kind = HealthKind(kinds[0])
    probe = _PROBES[kind](ck, (*path, kind.value), table[kind.value])
    if "status" in table:
        if kind is not HealthKind.HTTP:
            ck.fail((*path, "status"), "status applies to an http check", key=True)
        else:
            status = table["status"]
            if type(status) is not int or not 100 <= status <= 599:
                message = f"expected an HTTP status 100-599, got {describe(status)}"
                ck.fail((*path, "status"), message)
            values["status"] = status
    if probe is INVALID or len(ck.problems) > before:
        return INVALID
    return HealthCheck(kind=kind, **probe, **values)


def _command_probe(ck: Checker, path: Key, raw: object) -> dict[str, Any] | Invalid:
    """A command as a service's, except that a string always runs through `/bin/sh -c`."""
    command = checks.command(ck, path, raw, shell=isinstance(raw, str))
    return INVALID if command is INVALID else {"argv": command[0], "target": command[1]}


def _tcp_probe(ck: Checker, path: Key, raw: object) -> dict[str, Any] | Invalid:
    written = str(raw) if type(raw) is int else raw
    address = checks.host_port(written, "127.0.0.1") if isinstance(written, str) else None
    if address is None:
        return ck.fail(path, f'expected a port or "host:port", got {describe(raw)}')
    host, port = address
    return {"target": f"{host}:{port}", "host": host, "port": port}


def _http_probe(ck: Checker, path: Key, raw: object) -> dict[str, Any] | Invalid:
    if not isinstance(raw, str):
        return ck.fail(path, f"expected a URL, got {describe(raw)}")
    problem = f'expected a URL such as "http://127.0.0.1:8000/health", got {quote(raw)}'
    try:
        url = urllib.parse.urlsplit(raw)
        port = url.port
    except ValueError:  # "[" without "]", "[zz]" (no IPv6 address), a port past 65535 or "²"
        return ck.fail(path, problem)
    if url.scheme not in ("http", "https") or not url.hostname or port == 0:
        return ck.fail(path, problem)
    tls = url.scheme == "https"
    target = (url.path or "/") + (f"?{url.query}" if url.query else "")
    return {
        "target": raw,
        "host": url.hostname,
        "port": port or (443 if tls else 80),
        "path": target,
        "tls": tls,
    }


_PROBES = {
    HealthKind.COMMAND: _command_probe,
    HealthKind.TCP: _tcp_probe,
    HealthKind.HTTP: _http_probe,
}


def check_graph(ck: Checker, tables: Mapping[str, Any]) -> None:
    """Check what needs every service: names that exist, conditions that can hold, no cycle.

    Read from the raw `[services]` tables, so that a service with a problem of its own
    still has its dependencies checked.
    """
    graph = {name: dependencies(raw) for name, raw in tables.items()}
    for service, needs in graph.items():
        for name, condition in needs.items():
            where = _entry(tables, service, name)
            if name == service:
                ck.fail(where, f"{service} cannot depend on itself")
            elif name not in tables:
                ck.fail(where, unknown_service(name, [n for n in tables if n != service]))
            elif condition == Condition.HEALTHY and "healthcheck" not in tables[name]:
                ck.fail(where, f'"healthy" can never hold: {name} has no healthcheck')
            elif condition == Condition.COMPLETED and tables[name].get("restart") == "always":
                ck.fail(where, f'"completed" can never hold: {name} has restart = "always"')
    for cycle in _cycles(graph):
        ck.fail(_entry(tables, cycle[0], cycle[1]), f"dependency cycle: {' → '.join(cycle)}")


def dependencies(raw: object) -> dict[str, str]:
    """The names (and conditions) of a raw service table's depends_on, as far as readable."""
    needs = raw.get("depends_on") if isinstance(raw, dict) else None
    if isinstance(needs, list):
        return {name: Condition.STARTED.value for name in needs if isinstance(name, str)}
    if isinstance(needs, dict):
        return {name: str(condition) for name, condition in needs.items()}
    return {}


def _entry(tables: Mapping[str, Any], service: str, name: str) -> Key:
    """The key of `name` in `service`'s depends_on (an array index or a table key)."""
    raw = tables[service].get("depends_on")
    if isinstance(raw, list):
        return ("services", service, "depends_on", raw.index(name))
    return ("services", service, "depends_on", name)


def _cycles(graph: Mapping[str, Mapping[str, str]]) -> list[list[str]]:
    """Every distinct cycle a depth-first walk finds, each from its first service in file order."""
    order = {name: i for i, name in enumerate(graph)}
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    done: set[str] = set()

    def walk(name: str, stack: list[str]) -> None:
        if name in stack:
            loop = stack[stack.index(name) :]
            if frozenset(loop) not in seen:
                seen.add(frozenset(loop))
                start = min(range(len(loop)), key=lambda i: order[loop[i]])
                loop = loop[start:] + loop[:start]
                found.append([*loop, loop[0]])
            return
        if name in done:
            return
        stack.append(name)
        for dep in graph[name]:
            if dep in graph and dep != name:
                walk(dep, stack)
        stack.pop()
        done.add(name)

    for name in graph:
        walk(name, [])
    return sorted(found, key=lambda loop: order[loop[0]])
