"""Provides the checks of single values: each returns the value converted, or INVALID.

Each check takes the checker, the key's path and the raw TOML value. When the value has a
problem, it records it (through `Checker.fail`, at the value's line and column) and returns
INVALID.
"""

from __future__ import annotations

import enum
import math
import os
import shlex
import signal
import stat
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TypeVar

from tuisup.manifest.dotenv import parse_dotenv
from tuisup.manifest.files import TooLarge, read_text
from tuisup.manifest.locator import Key
from tuisup.manifest.problems import (
    INVALID,
    Checker,
    Invalid,
    Problem,
    describe,
    did_you_mean,
    quote,
    short_number,
)
from tuisup.spec import ExecutorKind

Command = tuple[tuple[str, ...], str]
"""A command's argv and its display form."""
_SHELL_ARGV = ("/bin/sh", "-c")

Check = Callable[[Checker, Key, object], object]
"""Checks one raw value: returns it converted, or records a problem and returns INVALID."""

E = TypeVar("E", bound=enum.StrEnum)


def string(ck: Checker, path: Key, raw: object) -> str | Invalid:
    """Check a string."""
    if isinstance(raw, str):
        return raw
    return ck.fail(path, f"expected a string, got {describe(raw)}")


def boolean(ck: Checker, path: Key, raw: object) -> bool | Invalid:
    """Check a boolean."""
    if isinstance(raw, bool):
        return raw
    return ck.fail(path, f"expected a boolean, got {describe(raw)}")


def table(ck: Checker, path: Key, raw: object) -> dict[str, object] | Invalid:
    """Check a table."""
    if isinstance(raw, dict):
        return raw
    return ck.fail(path, f"expected a table, got {describe(raw)}")


def number(low: float, *, above: bool = False, high: float | None = None) -> Check:
    """Make the check of a finite number, at least `low` (or above it) and at most `high`."""
    bounds = (
        f"from {low:g} to {high:g}" if high is not None else f"{'>' if above else '>='} {low:g}"
    )

    def check(ck: Checker, path: Key, raw: object) -> float | Invalid:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            return ck.fail(path, f"expected a number, got {describe(raw)}")
        value = float(raw) if isinstance(raw, float) or raw.bit_length() < 1000 else math.inf
        in_range = value > low if above else value >= low
        if not (math.isfinite(value) and in_range and (high is None or value <= high)):
            return ck.fail(path, f"expected a number {bounds}, got {short_number(raw)}")
        return value

    return check


def integer(low: int) -> Check:
    """Make the check of an integer of at least `low`."""

    def check(ck: Checker, path: Key, raw: object) -> int | Invalid:
        if isinstance(raw, bool) or not isinstance(raw, int):
            return ck.fail(path, f"expected an integer, got {describe(raw)}")
        if raw < low:
            return ck.fail(path, f"expected an integer >= {low}, got {short_number(raw)}")
        return raw

    return check


def one_of(ck: Checker, path: Key, raw: object, kind: type[E]) -> E | Invalid:
    """Check one of the words of `kind`; return its member."""
    options = [str(member) for member in kind]
    if isinstance(raw, str) and raw in options:
        return kind(raw)
    listing = ", ".join(quote(option) for option in options)
    got = f"{quote(raw)}{did_you_mean(raw, options)}" if isinstance(raw, str) else describe(raw)
    return ck.fail(path, f"expected one of {listing}, got {got}")


def choice(kind: type[enum.StrEnum]) -> Check:
    """Make the check of one of the words of `kind` (see `one_of`)."""
    return partial(one_of, kind=kind)


def resolved_path(ck: Checker, path: Key, raw: object) -> Path | Invalid:
    """Check a path string and make it absolute, relative to the manifest's folder."""
    text = string(ck, path, raw)
    if text is INVALID:
        return INVALID
    if not text:
        return ck.fail(path, 'expected a path, got string ""')
    if "\0" in text:
        return ck.fail(path, "a path cannot contain NUL characters")
    try:
        return (ck.root / os.path.expanduser(text)).resolve()
    except (OSError, ValueError, RuntimeError) as exc:
        return ck.fail(path, f"invalid path {quote(text)}: {exc}")


def directory(ck: Checker, path: Key, raw: object) -> Path | Invalid:
    """Check the path of a directory that exists."""
    found = resolved_path(ck, path, raw)
    if found is INVALID:
        return INVALID
    try:
        is_dir = found.is_dir()
    except OSError as exc:  # Python 3.11 lets ENAMETOOLONG and EACCES through
        return ck.fail(path, f"cannot use {found}: {exc.strerror or exc}")
    return found if is_dir else ck.fail(path, f"no such directory: {found}")


def log_folder_problem(folder: Path) -> str | None:
    """Say why tuisup could not write log files in `folder`, if it can tell before trying.

    The folder, or the nearest part of its path that exists, must be a directory that
    tuisup may write in (to create the rest). A disk that fills up later can't be told.

    Returns:
        The problem, or None when there is none.
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


def posix_signal(ck: Checker, path: Key, raw: object) -> signal.Signals | Invalid:
    """Check a signal name (`TERM` or `SIGTERM`) or number that can stop a process."""
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        return ck.fail(path, f"expected a signal name or number, got {describe(raw)}")
    if isinstance(raw, int):
        try:
            sig = signal.Signals(raw)
        except (ValueError, OverflowError):
            return ck.fail(path, f"unknown signal number {short_number(raw)}")
    else:
        name = raw.strip().upper()
        named = signal.Signals.__members__.get(name if name.startswith("SIG") else f"SIG{name}")
        if named is None:
            names = [n.removeprefix("SIG") for n in signal.Signals.__members__]
            hint = did_you_mean(name.removeprefix("SIG"), names)
            return ck.fail(path, f"unknown signal {quote(raw)}{hint}")
        sig = named
    if sig == signal.SIGSTOP:
        return ck.fail(path, "SIGSTOP pauses a process instead of stopping it")
    return sig


def exit_codes(ck: Checker, path: Key, raw: object) -> frozenset[int] | Invalid:
    """Check a non-empty array of exit codes (0 to 255)."""
    if not isinstance(raw, list):
        return ck.fail(path, f"expected an array of exit codes, got {describe(raw)}")
    if not raw:
        return ck.fail(path, "expected at least one exit code")
    bad = [i for i, code in enumerate(raw) if type(code) is not int or not 0 <= code <= 255]
    for i in bad:
        ck.fail((*path, i), f"expected an exit code from 0 to 255, got {describe(raw[i])}")
    return INVALID if bad else frozenset(raw)


def patterns(ck: Checker, path: Key, raw: object) -> tuple[str, ...] | Invalid:
    """Check an array of paths or globs, relative to the service's cwd and inside it."""
    if not isinstance(raw, list):
        return ck.fail(path, f"expected an array of paths or globs, got {describe(raw)}")
    failed = False
    for i, item in enumerate(raw):
        problem = _pattern_problem(item)
        if problem is not None:
            ck.fail((*path, i), problem)
            failed = True
    return INVALID if failed else tuple(raw)


def _pattern_problem(item: object) -> str | None:
    """What is wrong with one watch path or glob, if anything."""
    if not isinstance(item, str) or not item.strip():
        hint = ' (the whole cwd is ".")' if isinstance(item, str) else ""
        return f"expected a path or glob, got {describe(item)}{hint}"
    if item.startswith("/"):
        return f"expected a path relative to cwd, got {quote(item)}"
    if ".." in item.split("/"):
        # Changes are matched relative to cwd, and watching stays inside it.
        return f'expected a path inside cwd (no ".."), got {quote(item)}'
    return None


def port_number(text: str) -> int | None:
    """The port `text` writes in ASCII digits, 1 to 65535; None when it writes none.

    `str.isdigit` alone takes "²" (which `int` refuses) and "٣" (which it reads as 3).
    """
    if not (text.isascii() and text.isdigit()) or len(text) > 5:
        return None
    number = int(text)
    return number if 1 <= number <= 65535 else None


def host_port(text: str, default_host: str) -> tuple[str, int] | None:
    """Read `HOST:PORT`, `[IPV6]:PORT`, or `:PORT` and `PORT` (on `default_host`).

    Returns:
        The host, without brackets, and the port; None when `text` is none of these: its
        port is not 1 to 65535 in ASCII digits, or a bracket has no pair.
    """
    host, _, written = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = port_number(written)
    if port is None or "[" in host or "]" in host:
        return None
    return host or default_host, port


def env(ck: Checker, path: Key, raw: object) -> dict[str, str] | Invalid:
    """Check a table of environment variables, each a string."""
    entries = table(ck, path, raw)
    if entries is INVALID:
        return INVALID
    variables: dict[str, str] = {}
    for name, value in entries.items():
        if not name or "=" in name or "\0" in name:
            ck.fail((*path, name), f"invalid variable name {quote(name)}", key=True)
        elif isinstance(value, bool | int | float):
            written = describe(value).split(" ", 1)[1]
            ck.fail(
                (*path, name),
                f"expected a string, got {describe(value)} (quote it: {quote(written)})",
            )
        elif not isinstance(value, str):
            ck.fail((*path, name), f"expected a string, got {describe(value)}")
        elif "\0" in value:
            ck.fail((*path, name), "a variable cannot contain NUL characters")
        else:
            variables[name] = value
    return variables if len(variables) == len(entries) else INVALID


def env_file(ck: Checker, path: Key, raw: object) -> tuple[Path, dict[str, str]] | Invalid:
    """Check a dotenv file that can be read; return it and its variables."""
    file = resolved_path(ck, path, raw)
    if file is INVALID:
        return INVALID
    if file not in ck.env_files:
        ck.env_files[file] = _read_env_file(ck, path, file, str(raw))
    variables = ck.env_files[file]
    return INVALID if variables is INVALID else (file, variables)


def _read_env_file(ck: Checker, path: Key, file: Path, written: str) -> dict[str, str] | Invalid:
    try:
        text = read_text(file)
    except FileNotFoundError:
        return ck.fail(path, f"no such file: {file}")
    except OSError as exc:
        return ck.fail(path, f"cannot read {file}: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        return ck.fail(path, f"cannot read {file}: not UTF-8 ({exc.reason})")
    except TooLarge as exc:
        return ck.fail(path, f"cannot read {file}: {exc}")
    values, errors = parse_dotenv(text)
    display = os.path.join(os.path.dirname(ck.display), os.path.expanduser(written))
    ck.problems.extend(
        Problem(file=display, line=line, col=col, key="env_file", message=msg)
        for line, col, msg in errors
    )
    return INVALID if errors else values


def check_nul(ck: Checker, document: Mapping[str, object]) -> None:
    """Report each string in the document that holds a NUL, unless its value has a problem.

    Whatever tuisup does with a string (a path, an argument, a variable, a host, a URL)
    ends in C, where a NUL ends it: Python refuses it with a ValueError where it is used,
    while the host runs. The checks that refuse a NUL themselves (paths, commands,
    variables) say so in their own words, so this runs after them and skips a value
    reported already (not a table's strings: a table's problem is not theirs). Keys need
    no walk: each is a name that its table's check knows, or reports.
    """
    stack: list[tuple[Key, object]] = [((), document)]
    while stack:  # a loop: the document may nest as deep as the parser's stack allowed
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend(((*path, key), item) for key, item in value.items())
        elif path in ck.failed:
            continue
        elif isinstance(value, list):
            stack.extend(((*path, i), item) for i, item in enumerate(value))
        elif isinstance(value, str) and "\0" in value:
            ck.fail(path, "a string cannot contain NUL characters")


def in_process_problem(key: str, executor: ExecutorKind | None, why: str) -> str | None:
    """The problem of `key`, which needs a process of its own, for a target in tuisup's.

    Args:
        key: The key that cannot apply.
        executor: The service's executor; None for a target whose kind decides.
        why: What the key lacks in tuisup's process.

    Returns:
        The problem, or None when the service is a process of its own.
    """
    if executor is not None and not executor.in_process:
        return None
    where = f'executor = "{executor}"' if executor else "an in-process service"
    return f'{key} cannot apply to {where}: {why}; use executor = "process" or "async-process"'


def command(ck: Checker, path: Key, raw: object, shell: bool) -> Command | Invalid:
    """Check a command string or array; return its argv and display form."""
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
        return ck.fail(path, f"expected a string or an array of strings, got {describe(raw)}")
    if shell:
        return ck.fail(path, "expected a string with shell = true, got array")
    if not raw:
        return ck.fail(path, "expected a command, got an empty array")
    bad = [i for i, arg in enumerate(raw) if not isinstance(arg, str)]
    for i in bad:
        ck.fail((*path, i), f"expected a string, got {describe(raw[i])}")
    return INVALID if bad else _argv(ck, path, raw, shlex.join(raw))


def _argv(ck: Checker, path: Key, args: list[str], display: str) -> Command | Invalid:
    if not args[0]:
        return ck.fail(path, "the program name is empty")
    if any("\0" in arg for arg in args):
        return ck.fail(path, "a command cannot contain NUL characters")
    return tuple(args), display
