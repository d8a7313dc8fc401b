"""Provides the Procfile reader: `name: command` lines, as honcho and foreman run them."""

from __future__ import annotations

import os
import re
from pathlib import Path

from tuisup.importers.model import Imported, ImportFailure, service_name

PORT_BASE = 5000
PORT_STEP = 100
"""honcho's and foreman's rule: the process type at index i gets PORT = 5000 + 100 × i."""
_ENTRY = re.compile(r"([A-Za-z0-9_-]+)[ \t]*:[ \t]?(.*)")
_SHELL = re.compile(r"[$|&;<>*?`(){}\[\]~\\]")
"""Characters that only a shell gives their meaning (a Procfile line is run by `sh -c`)."""


def read(text: str, origin: str, folder: Path, out_dir: Path) -> Imported:
    """Read a Procfile.

    Args:
        text: The file's contents.
        origin: The file as messages show it (`tuisup.terminal.path_text`).
        folder: The Procfile's folder: honcho runs the commands there, and reads `.env`.
        out_dir: The manifest's folder: paths in it are relative to it.

    Raises:
        ImportFailure: A line is not `name: command`, or a name comes twice.
    """
    made = Imported(
        origin,
        header=[
            f"Imported from {origin} by `tuisup import`.",
            "Each process type runs through /bin/sh -c where it uses the shell, as honcho",
            "and foreman run it; PORT follows their rule: 5000 + 100 × the line's place.",
        ],
    )
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _ENTRY.fullmatch(line.strip())
        if match is None or not match.group(2).strip():
            raise ImportFailure(
                f"{origin}:{number}: expected `name: command`, got {line.strip()!r}"
            )
        name, command = match.group(1), match.group(2).strip()
        if name in seen:
            raise ImportFailure(f"{origin}:{number}: {name} is already on line {seen[name]}")
        seen[name] = number
        _entry(made, name, command, len(made.services), folder, out_dir)
    if not made.services:
        raise ImportFailure(f"{origin}: no process types (lines such as `web: gunicorn app`)")
    return made


def _entry(made: Imported, name: str, command: str, index: int, folder: Path, out: Path) -> None:
    key = service_name(name)
    service: dict[str, object] = {"command": command}
    if _SHELL.search(command):
        service["shell"] = True
    if folder.resolve() != out.resolve():
        service["cwd"] = _relative(folder, out)
    if (folder / ".env").is_file():
        service["env_file"] = _relative(folder / ".env", out)
    service["env"] = {"PORT": str(PORT_BASE + PORT_STEP * index)}
    made.services[key] = service
    made.note(key, "env", f"honcho's PORT for process type {index + 1}")
    if key != name:
        made.note(key, "command", f"process type {name!r} in the Procfile")


def _relative(path: Path, start: Path) -> str:
    return os.path.relpath(path.resolve(), start.resolve())
