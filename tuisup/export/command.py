"""Provides the `tuisup export` verb: pick the target, print the losses, write the files."""

from __future__ import annotations

import importlib
import sys
from dataclasses import replace
from pathlib import Path

from tuisup.export.common import Export, Options, read_source
from tuisup.spec import Manifest

TARGETS = ("compose", "k8s", "systemd")


def run_export(
    manifest: Manifest, target: str, output: str | None, *, strict: bool, user: bool
) -> int:
    """Export `manifest` for `target`; return the exit status.

    Args:
        manifest: The loaded manifest.
        target: One of `TARGETS`.
        output: Where to write: a file (compose) or a folder (k8s, systemd); None: stdout.
        strict: Whether a setting the target cannot express fails the export (exit 1),
            before anything is written.
        user: For systemd: user units (`systemctl --user`).
    """
    into = Path(output) if output else Path.cwd()
    if target == "compose" and output and not into.is_dir():
        into = into.parent  # the file's folder: compose takes relative paths from there
    options = Options(into.absolute(), user=user)
    if target == "systemd":  # units run where they are made: for this machine's systemd
        from tuisup.export.systemd import local_version

        options = replace(options, systemd_version=local_version())
    module = importlib.import_module(f"tuisup.export.{target}")
    made: Export = module.export(read_source(manifest), options)
    for loss in made.losses:
        print(f"tuisup export: {loss}", file=sys.stderr)  # noqa: T201
    if strict and made.losses:
        count = len(made.losses)
        print(  # noqa: T201
            f"tuisup export: --strict: {count} setting{'s' if count != 1 else ''} "
            f"{target} cannot express; nothing written",
            file=sys.stderr,
        )
        return 1
    if output is None:
        sys.stdout.write(made.together)
        return 0
    return _write(made, Path(output), single=target == "compose")


def _write(made: Export, output: Path, *, single: bool) -> int:
    """Write the files: `output` is the file of a single one, else their folder."""
    try:
        if single and not output.is_dir():
            ((name, text),) = made.files.items()
            output.write_text(text, encoding="utf-8")
            return 0
        output.mkdir(parents=True, exist_ok=True)
        for name, text in made.files.items():
            (output / name).parent.mkdir(exist_ok=True)  # a unit's drop-in folder
            (output / name).write_text(text, encoding="utf-8")
    except OSError as exc:
        where = exc.filename or output
        print(f"tuisup export: cannot write {where}: {exc.strerror or exc}", file=sys.stderr)  # noqa: T201
        return 1
    return 0
