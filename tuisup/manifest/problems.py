"""Provides what manifest validation reports: problems, the checker that collects them, words.

A check that finds a problem records it on the `Checker` and returns `INVALID`, which
`Checker.fail` returns for it: `None` is a value some keys legitimately have (`log_dir = false`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from tuisup.manifest.locator import BARE, Key, Locator
from tuisup.model.record import Record
from tuisup.terminal import json_text


class Problem(Record):
    """One thing wrong with a manifest (or its env file), located like a compiler error."""

    file: str
    """The file as the user named it."""
    line: int
    """1-based line, or 0 when the problem has no position (e.g. the file can't be read)."""
    col: int
    """1-based column."""
    key: str
    """The dotted key the problem is about, e.g. `services.web.restart`; may be empty."""
    message: str
    """What is wrong, e.g. `expected a boolean, got string "yes"`."""

    @classmethod
    def of_file(cls, file: str, message: str) -> Problem:
        """A problem of the file as a whole, at no line (unreadable, too large, not TOML)."""
        return cls(file=file, line=0, col=0, key="", message=message)

    def __str__(self) -> str:
        where = self.file if self.line == 0 else f"{self.file}:{self.line}:{self.col}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ManifestError(Exception):
    """A manifest could not be loaded; `problems` lists everything found, sorted by position."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class Invalid(enum.Enum):
    """The type of `INVALID`: one member, so that `is INVALID` narrows a checked value."""

    INVALID = "invalid"

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Final = Invalid.INVALID
"""What a check returns when the value has a problem (recorded on the checker)."""


def quote(text: str, limit: int = 60) -> str:
    """Quote `text` for a message, shortened to `limit` characters."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return json_text(text)  # JSON-quoted, C1 controls too: visible as \u009b, not obeyed


def short_number(value: int | float) -> str:
    """Write a number for a message, shortening an integer of hundreds of digits."""
    if not isinstance(value, int) or value.bit_length() <= 256:
        return str(value)
    if value.bit_length() > 13_000:  # str() refuses ints of more than 4300 digits
        return "an integer of thousands of digits"
    digits = str(value)
    return f"{digits[:12]}… ({len(digits.lstrip('-'))} digits)"


def describe(value: object) -> str:
    """Name a TOML value's type and show it, e.g. `integer 5` or `string "yes"`."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"{'integer' if isinstance(value, int) else 'float'} {short_number(value)}"
    if isinstance(value, str):
        return f"string {quote(value)}"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    isoformat = getattr(value, "isoformat", None)
    kind = type(value).__name__
    return f"{kind} {isoformat()}" if callable(isoformat) else kind


def did_you_mean(word: str, options: Sequence[str]) -> str:
    """Suggest the option closest to `word`, as ` (did you mean "x"?)`, or nothing."""
    import difflib  # only a manifest with a problem needs it (with heapq, ~1 ms)

    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {quote(close[0])}?)" if close else ""


def unknown_service(name: str, known: Sequence[str]) -> str:
    """The problem of a name that is no service, with the closest one that is."""
    return f"unknown service {quote(name)}{did_you_mean(name, known)}"


def dotted(path: Key) -> str:
    """Write a key's path as TOML would, e.g. `services.web.watch[2]`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = part if BARE.fullmatch(part) else quote(part)
            text += f".{name}" if text else name
    return text


class Checker:
    """Collects problems while the document is validated."""

    def __init__(self, display: str, root: Path, where: Locator) -> None:
        self.display = display
        """The manifest as the user named it."""
        self.root = root
        """The manifest's folder: relative paths in it start here."""
        self.where = where
        """Where each key and value of the manifest's text starts."""
        self.problems: list[Problem] = []
        """Everything found so far."""
        self.env_files: dict[Path, dict[str, str] | Invalid] = {}
        """Each env file read so far: several services may name the same one."""
        self.failed: set[Key] = set()
        """Each path a problem was recorded at (by `fail`): `check_nul` reports none again."""

    def fail(self, path: Key, message: str, *, key: bool = False) -> Invalid:
        """Record a problem at `path`'s value (or its key when `key` is set).

        Returns:
            INVALID, for a check to return.
        """
        line, col = self.where.find(path, key=key)
        self.failed.add(path)
        self.problems.append(
            Problem(file=self.display, line=line, col=col, key=dotted(path), message=message)
        )
        return INVALID

    def unknown(self, path: Key, known: Sequence[str]) -> None:
        """Record an unknown key, suggesting the closest known one."""
        name = str(path[-1])
        self.fail(path, f"unknown key {quote(name)}{did_you_mean(name, known)}", key=True)
