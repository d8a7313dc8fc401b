"""Provides the pieces manifest validation is made of: problems, the checker, value checks.

Each check takes the checker, the key's path and the raw TOML value, and returns the value
converted, or None after recording a problem at the value's line and column. The checks
are private to `tuisup.manifest`, which is their only user; `Problem` and `ManifestError`
are public through it.
"""

# `return ck.fail(...)` records a problem and returns None, the "invalid" result of every check.
# mypy: disable-error-code="func-returns-value"

from __future__ import annotations

import difflib
import math
import os
import re
import shlex
import signal
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuisup.manifest.dotenv import parse_dotenv
from tuisup.manifest.locator import Key, Locator
from tuisup.spec import BackoffKind, RestartPolicy
from tuisup.terminal import json_text

_BARE = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class Problem:
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

    def __str__(self) -> str:
        where = self.file if self.line == 0 else f"{self.file}:{self.line}:{self.col}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ManifestError(Exception):
    """A manifest could not be loaded; `problems` lists everything found, sorted by position."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def _quote(text: str, limit: int = 60) -> str:
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return json_text(text)  # JSON-quoted, C1 controls too: visible as \u009b, not obeyed


def _num(value: int | float) -> str:
    if not isinstance(value, int) or value.bit_length() <= 256:
        return str(value)
    if value.bit_length() > 13_000:  # str() refuses ints of more than 4300 digits
        return "an integer of thousands of digits"
    digits = str(value)
    return f"{digits[:12]}… ({len(digits.lstrip('-'))} digits)"


def _describe(value: object) -> str:
    """Name a TOML value's type and show it, e.g. `integer 5` or `string "yes"`."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"{'integer' if isinstance(value, int) else 'float'} {_num(value)}"
    if isinstance(value, str):
        return f"string {_quote(value)}"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    isoformat = getattr(value, "isoformat", None)
    kind = type(value).__name__
    return f"{kind} {isoformat()}" if callable(isoformat) else kind


def _did_you_mean(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {_quote(close[0])}?)" if close else ""


def _dotted(path: Key) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = part if _BARE.fullmatch(part) else _quote(part)
            text += f".{name}" if text else name
    return text


@dataclass
class _Checker:
    """Collects problems while the document is validated."""

    display: str
    root: Path
    where: Locator
    problems: list[Problem] = field(default_factory=list)
    env_files: dict[Path, dict[str, str] | None] = field(default_factory=dict)

    def fail(self, path: Key, message: str, *, key: bool = False) -> None:
        """Record a problem at `path`'s value (or its key when `key` is set)."""
        line, col = self.where.find(path, key=key)
        self.problems.append(Problem(self.display, line, col, _dotted(path), message))

    def unknown(self, path: Key, known: Sequence[str]) -> None:
        """Record an unknown key, suggesting the closest known one."""
        name = str(path[-1])
        self.fail(path, f"unknown key {_quote(name)}{_did_you_mean(name, known)}", key=True)


_Command = tuple[tuple[str, ...], str]
"""A command's argv and its display form."""
_SHELL_ARGV = ("/bin/sh", "-c")

_Check = Callable[[_Checker, Key, object], Any]
"""Validates one raw value: returns it converted, or records a problem and returns None."""


def _string(ck: _Checker, path: Key, raw: object) -> str | None:
    if isinstance(raw, str):
        return raw
    return ck.fail(path, f"expected a string, got {_describe(raw)}")


def _bool(ck: _Checker, path: Key, raw: object) -> bool | None:
    if isinstance(raw, bool):
        return raw
    return ck.fail(path, f"expected a boolean, got {_describe(raw)}")


def _table(ck: _Checker, path: Key, raw: object) -> dict[str, Any] | None:
    if isinstance(raw, dict):
        return raw
    return ck.fail(path, f"expected a table, got {_describe(raw)}")


def _number(low: float, *, above: bool = False, high: float | None = None) -> _Check:
    bounds = (
        f"from {low:g} to {high:g}" if high is not None else f"{'>' if above else '>='} {low:g}"
    )

    def check(ck: _Checker, path: Key, raw: object) -> float | None:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            return ck.fail(path, f"expected a number, got {_describe(raw)}")
        value = float(raw) if isinstance(raw, float) or raw.bit_length() < 1000 else math.inf
        in_range = value > low if above else value >= low
        if not (math.isfinite(value) and in_range and (high is None or value <= high)):
            return ck.fail(path, f"expected a number {bounds}, got {_num(raw)}")
        return value

    return check


def _integer(low: int) -> _Check:
    def check(ck: _Checker, path: Key, raw: object) -> int | None:
        if isinstance(raw, bool) or not isinstance(raw, int):
            return ck.fail(path, f"expected an integer, got {_describe(raw)}")
        if raw < low:
            return ck.fail(path, f"expected an integer >= {low}, got {_num(raw)}")
        return raw

    return check


def _one_of(ck: _Checker, path: Key, raw: object, options: Sequence[str]) -> str | None:
    if isinstance(raw, str) and raw in options:
        return raw
    listing = ", ".join(_quote(option) for option in options)
    got = f"{_quote(raw)}{_did_you_mean(raw, options)}" if isinstance(raw, str) else _describe(raw)
    return ck.fail(path, f"expected one of {listing}, got {got}")


def _choice(kind: type[RestartPolicy] | type[BackoffKind]) -> _Check:
    def check(ck: _Checker, path: Key, raw: object) -> object:
        value = _one_of(ck, path, raw, [str(member) for member in kind])
        return None if value is None else kind(value)

    return check


def _path(ck: _Checker, path: Key, raw: object) -> Path | None:
    """Check a path string and make it absolute, relative to the manifest's folder."""
    text = _string(ck, path, raw)
    if text is None:
        return None
    if not text:
        return ck.fail(path, 'expected a path, got string ""')
    if "\0" in text:
        return ck.fail(path, "a path cannot contain NUL characters")
    try:
        return (ck.root / os.path.expanduser(text)).resolve()
    except (OSError, ValueError, RuntimeError) as exc:
        return ck.fail(path, f"invalid path {_quote(text)}: {exc}")


def _directory(ck: _Checker, path: Key, raw: object) -> Path | None:
    directory = _path(ck, path, raw)
    if directory is None:
        return None
    try:
        found = directory.is_dir()
    except OSError as exc:  # Python 3.11 lets ENAMETOOLONG and EACCES through
        return ck.fail(path, f"cannot use {directory}: {exc.strerror or exc}")
    return directory if found else ck.fail(path, f"no such directory: {directory}")


def _log_folder(folder: Path) -> str | None:
    """Say why tuisup could not write log files in `folder`, if it can tell before trying.

    The folder, or the nearest part of its path that exists, must be a directory that
    tuisup may write in (to create the rest). A disk that fills up later can't be told.
    """
    found = folder
    while True:
        try:
            info = found.stat()
            break
        except (FileNotFoundError, NotADirectoryError):
            if found.parent == found:
                return None
            found = found.parent
        except OSError as exc:
            return f"cannot use {folder}: {exc.strerror or exc}"
    create = "" if found == folder else f"cannot create {folder}: "
    if not stat.S_ISDIR(info.st_mode):
        return f"{create}{found} is not a directory"
    if not os.access(found, os.W_OK | os.X_OK):
        return f"{create}no permission to write in {found}"
    return None


def _signal(ck: _Checker, path: Key, raw: object) -> signal.Signals | None:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        return ck.fail(path, f"expected a signal name or number, got {_describe(raw)}")
    if isinstance(raw, int):
        try:
            sig = signal.Signals(raw)
        except (ValueError, OverflowError):
            return ck.fail(path, f"unknown signal number {_num(raw)}")
    else:
        name = raw.strip().upper()
        sig_or_none = signal.Signals.__members__.get(
            name if name.startswith("SIG") else f"SIG{name}"
        )
        if sig_or_none is None:
            names = [n.removeprefix("SIG") for n in signal.Signals.__members__]
            hint = _did_you_mean(name.removeprefix("SIG"), names)
            return ck.fail(path, f"unknown signal {_quote(raw)}{hint}")
        sig = sig_or_none
    if sig == signal.SIGSTOP:
        return ck.fail(path, "SIGSTOP pauses a process instead of stopping it")
    return sig


def _exit_codes(ck: _Checker, path: Key, raw: object) -> frozenset[int] | None:
    if not isinstance(raw, list):
        return ck.fail(path, f"expected an array of exit codes, got {_describe(raw)}")
    if not raw:
        return ck.fail(path, "expected at least one exit code")
    bad = [i for i, code in enumerate(raw) if type(code) is not int or not 0 <= code <= 255]
    for i in bad:
        ck.fail((*path, i), f"expected an exit code from 0 to 255, got {_describe(raw[i])}")
    return None if bad else frozenset(raw)


def _patterns(ck: _Checker, path: Key, raw: object) -> tuple[str, ...] | None:
    """An array of paths or globs, relative to the service's cwd and inside it."""
    if not isinstance(raw, list):
        return ck.fail(path, f"expected an array of paths or globs, got {_describe(raw)}")
    failed = False
    for i, item in enumerate(raw):
        problem = _pattern_problem(item)
        if problem is not None:
            ck.fail((*path, i), problem)
            failed = True
    return None if failed else tuple(raw)


def _pattern_problem(item: object) -> str | None:
    """What is wrong with one watch path or glob, if anything."""
    if not isinstance(item, str) or not item.strip():
        hint = ' (the whole cwd is ".")' if isinstance(item, str) else ""
        return f"expected a path or glob, got {_describe(item)}{hint}"
    if item.startswith("/"):
        return f"expected a path relative to cwd, got {_quote(item)}"
    if ".." in item.split("/"):
        # Changes are matched relative to cwd, and watching stays inside it.
        return f'expected a path inside cwd (no ".."), got {_quote(item)}'
    return None


def _env(ck: _Checker, path: Key, raw: object) -> dict[str, str] | None:
    table = _table(ck, path, raw)
    if table is None:
        return None
    env: dict[str, str] = {}
    for name, value in table.items():
        if not name or "=" in name or "\0" in name:
            ck.fail((*path, name), f"invalid variable name {_quote(name)}", key=True)
        elif isinstance(value, bool | int | float):
            written = _describe(value).split(" ", 1)[1]
            ck.fail(
                (*path, name),
                f"expected a string, got {_describe(value)} (quote it: {_quote(written)})",
            )
        elif not isinstance(value, str):
            ck.fail((*path, name), f"expected a string, got {_describe(value)}")
        elif "\0" in value:
            ck.fail((*path, name), "a variable cannot contain NUL characters")
        else:
            env[name] = value
    return env if len(env) == len(table) else None


def _env_file(ck: _Checker, path: Key, raw: object) -> tuple[Path, dict[str, str]] | None:
    file = _path(ck, path, raw)
    if file is None:
        return None
    if file not in ck.env_files:
        ck.env_files[file] = _read_env_file(ck, path, file, str(raw))
    env = ck.env_files[file]
    return None if env is None else (file, env)


def _read_env_file(ck: _Checker, path: Key, file: Path, written: str) -> dict[str, str] | None:
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ck.fail(path, f"no such file: {file}")
    except OSError as exc:
        return ck.fail(path, f"cannot read {file}: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        return ck.fail(path, f"cannot read {file}: not UTF-8 ({exc.reason})")
    values, errors = parse_dotenv(text)
    display = os.path.join(os.path.dirname(ck.display), os.path.expanduser(written))
    ck.problems.extend(Problem(display, line, col, "env_file", msg) for line, col, msg in errors)
    return None if errors else values


def _command(ck: _Checker, path: Key, raw: object, shell: bool) -> _Command | None:
    """Return (argv, display form) for a command string or array."""
    if isinstance(raw, str):
        if not raw.strip():
            return ck.fail(path, "expected a command, got an empty string")
        if shell:
            return (*_SHELL_ARGV, raw), raw
        try:
            return _argv(ck, path, shlex.split(raw), raw)
        except ValueError as exc:
            return ck.fail(path, f"cannot split command: {exc}")
    if not isinstance(raw, list):
        return ck.fail(path, f"expected a string or an array of strings, got {_describe(raw)}")
    if shell:
        return ck.fail(path, "expected a string with shell = true, got array")
    if not raw:
        return ck.fail(path, "expected a command, got an empty array")
    bad = [i for i, arg in enumerate(raw) if not isinstance(arg, str)]
    for i in bad:
        ck.fail((*path, i), f"expected a string, got {_describe(raw[i])}")
    return None if bad else _argv(ck, path, raw, shlex.join(raw))


def _argv(ck: _Checker, path: Key, args: list[str], display: str) -> _Command | None:
    if not args[0]:
        return ck.fail(path, "the program name is empty")
    if any("\0" in arg for arg in args):
        return ck.fail(path, "a command cannot contain NUL characters")
    return tuple(args), display
