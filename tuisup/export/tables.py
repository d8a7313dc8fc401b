"""Provides the declared tables of a manifest: what an export writes once, with its count.

The manifest holds instances (`worker.0`, `worker.1`, ...); a target writes the table
they come from once, with its replica count (compose's `deploy.replicas`, a Deployment's
`replicas`, a systemd template), from its first instance's spec. A table of no replicas
has no instance: the one it would have is made for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuisup.model.record import replace
from tuisup.spec import Manifest, ServiceSpec, Template


@dataclass(frozen=True, slots=True)
class Table:
    """A declared `[services.NAME]` table, which a target writes once with its count."""

    spec: ServiceSpec
    """Its first instance's spec under the declared name: replica 0's values, as the
    targets that give every replica the same values write them."""
    replicas: int | None
    """Its `replicas`; None: the table has none (one instance, named as declared)."""
    instances: tuple[ServiceSpec, ...]
    """Each instance's own spec (`worker.0`, ...): none for `replicas = 0`."""

    @property
    def name(self) -> str:
        """The declared name."""
        return self.spec.name

    @property
    def alike(self) -> bool:
        """Whether a target that cannot number replicas runs several identical ones."""
        return (self.replicas or 0) > 1


def declared_tables(manifest: Manifest, order: list[str]) -> tuple[Table, ...]:
    """The tables the instances come from, in `order`; one of no replicas gets one made."""
    found: dict[str, list[ServiceSpec]] = {}
    for spec in manifest.services.values():
        found.setdefault(spec.declared, []).append(spec)
    tables = []
    for name, template in manifest.templates.items():
        if template.replicas == 0:
            tables.append(Table(replace(_first(manifest, template), name=name), 0, ()))
    for name, specs in found.items():
        count = manifest.templates[name].replicas if name in manifest.templates else None
        tables.append(Table(replace(specs[0], name=name), count, tuple(specs)))
    return tuple(sorted(tables, key=lambda table: order.index(table.name)))


def _first(manifest: Manifest, template: Template) -> ServiceSpec:
    """The spec replica 0 of a table of no replicas would have, made as reading makes it.

    Not through scaling: its port may be one that another service has (which no replica
    takes, so the manifest allows it).
    """
    from tuisup.manifest.groups import assign_groups
    from tuisup.manifest.scale import remade

    # The loader checked the table as it is: it makes its instance again.
    (first,) = assign_groups(remade(manifest, template, 1, manifest.templates), manifest.groups)
    return first
