"""Provides what a reload of the manifest changes: the plan, worked out from two manifests.

The Host applies a plan (see `Host.reload`); working it out needs nothing but the specs,
so it is a plain function, tested on its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from tuisup.model.record import Record, replace
from tuisup.spec import RUN_FIELDS, Manifest, ServiceSpec


class ReloadPlan(Record):
    """Which services a new manifest adds, removes, restarts, or changes in place."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    """Their table changed how they run (`RUN_FIELDS`): they restart under the new spec."""
    updated: tuple[str, ...]
    """Their table changed only how tuisup steers them: the new spec applies in place."""


def plan_reload(old: Mapping[str, ServiceSpec], new: Mapping[str, ServiceSpec]) -> ReloadPlan:
    """Compare two manifests' services; a table that only moved (its line) is unchanged."""
    edited = [
        name
        for name, spec in new.items()
        if name in old and replace(spec, line=0) != replace(old[name], line=0)
    ]
    changed = [name for name in edited if runs_differently(old[name], new[name])]
    return ReloadPlan(
        added=tuple(name for name in new if name not in old),
        removed=tuple(name for name in old if name not in new),
        changed=tuple(changed),
        updated=tuple(name for name in edited if name not in changed),
    )


def runs_differently(old: ServiceSpec, new: ServiceSpec) -> bool:
    """Whether a new spec changes how the service runs, so that it needs a new run."""
    return any(getattr(old, name) != getattr(new, name) for name in RUN_FIELDS)


class Scales:
    """The counts of replicated tables scaled while running (`Host.scale`).

    A reload keeps them, unless the file's `replicas` of that table changed: then the file
    wins, as it does for every other key.
    """

    def __init__(self, manifest: Manifest) -> None:
        self.counts: dict[str, int] = {}
        self._read = manifest.replicated
        """Each replicated table's `replicas` as the manifest file last said."""

    def keep(self, new: Manifest) -> Manifest:
        """`new` (just read) with the counts scaled since, where the file did not change them."""
        from tuisup.manifest.scale import scaled

        read, self._read = self._read, new.replicated
        for name, count in list(self.counts.items()):
            if name not in self._read or self._read[name] != read.get(name):
                del self.counts[name]
                continue
            try:
                new = scaled(new, name, count)
            except (LookupError, ValueError):  # its ports now overlap another's, ...
                del self.counts[name]
        return new


def reread(path: Path) -> Manifest:
    """Load the manifest again, naming it in problems as a user would (relative).

    Raises:
        ManifestError: It is not valid (or not there any more).
    """
    from tuisup.manifest import load_manifest

    shown = os.path.relpath(path)
    return load_manifest(path if shown.startswith("..") else shown)
