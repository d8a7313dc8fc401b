"""Provides `scaled`: a manifest with another count of a replicated table's instances.

Scaling while running (`tuisup scale`, the console's `+` and `-`) makes the instances the
way reading the manifest does (`manifest.replicas`), from the table kept in its `Template`,
so that the instances that remain have the very same spec and keep running.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from tuisup.manifest.groups import assign_groups
from tuisup.manifest.loader import service_spec
from tuisup.manifest.locator import Locator
from tuisup.manifest.problems import INVALID, Checker
from tuisup.manifest.replicas import MAX_REPLICAS, instances, overlaps, port_env, ranges, shown
from tuisup.model.record import replace
from tuisup.spec import Manifest, ServiceSpec, Template


def scaled(manifest: Manifest, name: str, count: int) -> Manifest:
    """Return `manifest` with `count` instances of the replicated table `name`.

    Raises:
        LookupError: `name` is not a table of the manifest.
        ValueError: It cannot have `count` instances: it is a group or a replica, it has no
            `replicas` key, the count is out of range, its ports would overlap another's or
            pass 65535, or its table no longer checks (an env file gone, ...).
    """
    template = manifest.templates.get(name)
    if template is None:
        if (group := manifest.groups.get(name)) is not None:
            tables = [m for m in group.services if m in manifest.replicated]
            which = f"scale {', '.join(tables)}" if tables else "none of its services is"
            raise ValueError(f"it is a group, not a replicated service ({which})")
        if name in manifest.services:
            declared = manifest.services[name].declared
            if declared != name:
                raise ValueError(f"it is a replica of {declared}: scale {declared}")
            raise ValueError(f"{name} has no replicas key: add replicas = 1 to its table")
        raise LookupError(name)
    if template.replicas is None:
        raise ValueError(f"{name} has no replicas key: add replicas = 1 to its table")
    if not 0 <= count <= MAX_REPLICAS:
        raise ValueError(f"expected 0 to {MAX_REPLICAS} replicas, got {count}")
    templates = {**manifest.templates, name: replace(template, replicas=count)}
    taken = ranges(templates)
    if name in taken and taken[name] and taken[name].stop - 1 > 65535:
        raise ValueError(f"{name}'s ports {shown(taken[name])} would pass 65535")
    for one, other in overlaps(taken):
        if name in (one, other):
            theirs = other if one == name else one
            mine, clash = shown(taken[name]), shown(taken[theirs])
            raise ValueError(f"{name}'s ports {mine} would overlap {theirs}'s {clash}")
    made = remade(manifest, templates[name], count, templates)
    made = [replace(spec, line=template.line) for spec in made]  # in the table's place
    others = [spec for spec in manifest.services.values() if spec.declared != name]
    specs = sorted([*others, *assign_groups(made, manifest.groups)], key=lambda s: s.line)
    return replace(manifest, services={spec.name: spec for spec in specs}, templates=templates)


def remade(
    manifest: Manifest, template: Template, count: int, templates: Mapping[str, Template]
) -> list[ServiceSpec]:
    """Make `count` instances of a table from its `Template`, as reading the manifest does.

    Args:
        manifest: The manifest the table is in (its folder and log defaults).
        template: The table.
        count: How many instances.
        templates: Every table's template, for the `TUISUP_PORT_<NAME>` variables.

    Raises:
        ValueError: The table no longer checks (an env file gone, ...): its problems.
    """
    ck = Checker(str(manifest.path), manifest.root, Locator(""))
    make = partial(service_spec, defaults=manifest.settings.logs)
    made = instances(ck, template, count, port_env(templates), make)
    if made is INVALID:
        raise ValueError("; ".join(problem.message for problem in ck.problems))
    return made
