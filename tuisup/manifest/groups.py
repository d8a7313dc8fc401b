"""Provides the checks of `[groups.NAME]` tables: services that restart together.

A group names its members in start order (stops run in reverse). A service is in at most
one group; a group is not empty, names only services that exist, is not named like a
service, and its order agrees with its members' `depends_on` (a member starts after what
it depends on). Read after every service, from the raw tables, like the dependency graph.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from tuisup.manifest import checks
from tuisup.manifest.deps import dependencies
from tuisup.manifest.locator import Key
from tuisup.manifest.problems import (
    INVALID,
    Checker,
    Invalid,
    describe,
    quote,
    unknown_service,
)
from tuisup.model.record import replace
from tuisup.spec import GroupFailure, GroupSpec, GroupStrategy, ServiceSpec

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_CHECKS: dict[str, checks.Check] = {
    "strategy": checks.choice(GroupStrategy),
    "max_restarts": checks.integer(0),
    "restart_window": checks.number(0, above=True),
    "on_failure": checks.choice(GroupFailure),
}
_KEYS = ("services", *_CHECKS)


def groups(ck: Checker, raw: object, services: Mapping[str, Any]) -> dict[str, GroupSpec]:
    """Check the `[groups]` tables against the raw `[services]` tables; return the valid ones."""
    if raw is None:
        return {}
    tables = checks.table(ck, ("groups",), raw)
    if tables is INVALID:
        return {}
    owners: dict[str, str] = {}
    found: dict[str, GroupSpec] = {}
    for name, table in tables.items():
        group = _group(ck, str(name), table, services, owners)
        if group is not INVALID:
            found[group.name] = group
    return found


def _group(
    ck: Checker, name: str, raw: object, services: Mapping[str, Any], owners: dict[str, str]
) -> GroupSpec | Invalid:
    base: Key = ("groups", name)
    before = len(ck.problems)
    if not _NAME.fullmatch(name):
        rule = 'letters, digits, "-" and "_", starting with a letter, at most 64 characters'
        ck.fail(base, f"invalid group name {quote(name)}: use {rule}", key=True)
    elif name in services:
        ck.fail(base, f"group {name} has the name of a service: name it otherwise", key=True)
    table = checks.table(ck, base, raw)
    if table is INVALID:
        return INVALID
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key in _CHECKS:
            values[key] = _CHECKS[key](ck, (*base, key), value)
        elif key != "services":
            ck.unknown((*base, key), _KEYS)
    members = _members(ck, base, table, services, owners)
    if len(ck.problems) > before or members is INVALID:
        return INVALID
    line = ck.where.find(base, key=True)[0]
    return GroupSpec(name=name, services=members, line=line, **values)


def _members(
    ck: Checker,
    base: Key,
    table: Mapping[str, object],
    services: Mapping[str, Any],
    owners: dict[str, str],
) -> tuple[str, ...] | Invalid:
    """The `services` array: known names, once each, in no other group, dependencies first."""
    path = (*base, "services")
    if "services" not in table:
        return ck.fail(base, 'missing required key "services"', key=True)
    raw = table["services"]
    if not isinstance(raw, list):
        return ck.fail(path, f"expected an array of service names, got {describe(raw)}")
    if not raw:
        return ck.fail(path, "a group needs at least one service")
    group = str(base[1])
    names: list[str] = []
    for i, item in enumerate(raw):
        if not isinstance(item, str):
            ck.fail((*path, i), f"expected a service name, got {describe(item)}")
        elif item not in services:
            ck.fail((*path, i), unknown_service(item, list(services)))
        elif item in names:
            ck.fail((*path, i), f"{quote(item)} is listed twice")
        elif item in owners:
            ck.fail((*path, i), f"{item} is already in group {owners[item]}: a service is in one")
        else:
            names.append(item)
            owners[item] = group
    if len(names) != len(raw):
        return INVALID
    for i, name in enumerate(names):
        for dep in dependencies(services[name]):
            if dep in names[i + 1 :]:
                message = (
                    f"{name} depends on {dep}, which the group starts after it: "
                    f"list {dep} before {name}"
                )
                ck.fail((*path, i), message)
    return tuple(names)


def assign_groups(
    specs: Iterable[ServiceSpec], found: Mapping[str, GroupSpec]
) -> list[ServiceSpec]:
    """The specs, each member (every replica of a replicated one) with its group set."""
    owner = {member: group for group in found.values() for member in group.services}
    return [
        replace(spec, group=owner[spec.declared]) if spec.declared in owner else spec
        for spec in specs
    ]
