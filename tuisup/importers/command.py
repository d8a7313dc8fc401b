"""Provides the `tuisup import` verb: read the input, write a commented, checked manifest."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tuisup.importers.model import Imported, ImportFailure
from tuisup.terminal import one_line, path_text, text_lines


def run_import(origin: str, output: str, *, force: bool) -> int:
    """Import a Procfile or compose file into a manifest; return the exit status.

    Args:
        origin: The input: a compose file when it ends in `.yml` or `.yaml`, else a Procfile.
        output: The manifest to write.
        force: Whether an existing manifest is overwritten.
    """
    target = Path(output)
    # The paths as messages and the manifest's comments show them: exact, and safe.
    shown, written = path_text(origin), path_text(output)
    if target.exists() and not force:
        return _fail(f"{written} exists: --force overwrites it")
    source = Path(origin)
    from tuisup.manifest.files import read_text  # at most 16 MiB, as a manifest is read

    try:
        text = read_text(source)
    except (OSError, ValueError) as exc:  # not UTF-8 (UnicodeDecodeError), or too large
        return _fail(f"{shown}: cannot read: {getattr(exc, 'strerror', None) or exc}")
    folder, out_dir = source.absolute().parent, target.absolute().parent
    try:
        if source.suffix in (".yml", ".yaml"):
            from tuisup.importers import compose

            made = compose.read(text, shown, folder, out_dir)
        else:
            from tuisup.importers import procfile

            made = procfile.read(text, shown, folder, out_dir)
    except ImportFailure as exc:
        return _fail(str(exc))
    manifest = render(made)
    try:
        data = manifest.encode("utf-8")
    except UnicodeEncodeError:  # a folder's name that is not UTF-8, for `cwd`
        return _fail(f"a path of {shown} is not UTF-8, which TOML cannot hold; nothing written")
    from tuisup.manifest import ManifestError, parse_manifest

    try:
        parse_manifest(manifest, target.absolute(), written)
    except ManifestError as exc:  # a value tuisup rejects (a signal it does not know, ...)
        return _fail(f"the manifest made from {shown} would have problems; nothing written:\n{exc}")
    for loss in made.losses:
        print(f"tuisup import: {one_line(str(loss))}", file=sys.stderr)  # noqa: T201
    try:
        target.write_bytes(data)
    except OSError as exc:
        return _fail(f"cannot write {written}: {exc.strerror or exc}")
    count = len(made.services)
    print(f"wrote {written}: {count} service{'s' if count != 1 else ''}")  # noqa: T201
    return 0


def render(made: Imported) -> str:
    """The manifest as TOML, with its comments."""
    import tomlkit

    document = tomlkit.document()
    for line in made.header:
        document.add(_comment(line))
    for line in made.left_out:
        document.add(_comment(line))
    document.add(tomlkit.nl())
    services = tomlkit.table(is_super_table=True)
    for name, keys in made.services.items():
        table = tomlkit.table()
        for line in made.intro.get(name, []):
            table.add(_comment(line))
        for key, value in keys.items():
            item = tomlkit.item(_value(value))
            if note := made.notes.get(name, {}).get(key):
                item.comment(one_line(note))
            table.add(key, item)
        services.add(name, table)
    document.add("services", services)
    return tomlkit.dumps(document)


def _comment(line: str) -> Any:
    """A comment line: TOML allows no control character in one (nor does a terminal).

    Its paths come shown already (`path_text`); what else it quotes of the input (a
    service's name, its image) is made one safe line.
    """
    import tomlkit

    return tomlkit.comment(one_line(line))


def _value(value: Any) -> Any:
    """Tables inline (`env = { ... }`), the rest as is."""
    import tomlkit

    if isinstance(value, dict):
        inline = tomlkit.inline_table()
        inline.update(value)
        return inline
    return value


def _fail(message: str) -> int:
    """Say why nothing was written; each line safe (they quote the input and its errors)."""
    text = "\n".join(text_lines(message))
    print(f"tuisup import: {text}", file=sys.stderr)  # noqa: T201
    return 1
