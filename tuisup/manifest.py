"""Provides the services.toml loader: parsing, validation and precise problem reports."""

# `return ck.fail(...)` records a problem and returns None, the "invalid" result of every check.
# mypy: disable-error-code="func-returns-value"

from __future__ import annotations

import difflib
import json
import math
import os
import re
import shlex
import signal
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuisup.dotenv import parse_dotenv
from tuisup.spec import (
    BackoffKind,
    ExecutorKind,
    HostSettings,
    Manifest,
    RestartPolicy,
    ServiceSpec,
)
from tuisup.toml_locator import Key, Locator

__all__ = ["ManifestError", "Problem", "load_manifest", "parse_dotenv", "parse_manifest"]

_Command = tuple[tuple[str, ...], str]
"""A command's argv and its display form."""


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


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate a manifest file.

    Args:
        path: The manifest's path; problems name it exactly as given here.

    Returns:
        The validated manifest, whose `path` is absolute and resolved.

    Raises:
        ManifestError: The file can't be read or has problems (all of them are reported).
    """
    display = os.fspath(path)
    try:
        text = Path(display).read_text(encoding="utf-8")
        resolved = Path(display).resolve()
    except OSError as exc:
        raise ManifestError([_unreadable(display, exc.strerror or str(exc))]) from None
    except (UnicodeDecodeError, ValueError, RuntimeError) as exc:
        raise ManifestError([_unreadable(display, str(exc))]) from None
    return parse_manifest(text, resolved, display)


def parse_manifest(text: str, path: Path, display: str | None = None) -> Manifest:
    """Validate manifest text.

    Args:
        text: The TOML source.
        path: Where the manifest lives; relative paths in it start from its folder.
        display: How problems name the file (default: `path`).

    Returns:
        The validated manifest.

    Raises:
        ManifestError: The text has problems (all of them are reported, sorted by line).
    """
    display = str(path) if display is None else display
    path = Path(os.path.abspath(path))
    text = text.removeprefix("\ufeff")  # TOML parsers reject a byte-order mark
    document = _parse_toml(text, display)
    where = Locator(text)
    where.run_safely()
    ck = _Checker(display, path.parent, where)
    for name in document:
        if name not in ("tuisup", "services"):
            ck.unknown((name,), ("tuisup", "services"))
    settings = _host_settings(ck, document.get("tuisup", {}))
    services = _services(ck, document.get("services"))
    if ck.problems:
        ck.problems.sort(key=lambda p: (p.file != display, p.file, p.line, p.col))
        raise ManifestError(ck.problems)
    assert settings is not None  # only None when a problem was recorded
    return Manifest(path=path, settings=settings, services=services)


# --- values and messages -------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_BARE = re.compile(r"[A-Za-z0-9_-]+")
_SHELL_ARGV = ("/bin/sh", "-c")


def _unreadable(display: str, reason: str) -> Problem:
    return Problem(display, 0, 0, "", f"cannot read: {reason}")


def _quote(text: str, limit: int = 60) -> str:
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return json.dumps(text, ensure_ascii=False)


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


# --- parsing -------------------------------------------------------------------------------


def _parse_toml(text: str, display: str) -> dict[str, Any]:
    """Parse TOML and turn any failure into a one-problem ManifestError.

    A valid file is read with the standard library's tomllib: importing tomlkit costs
    40 ms and 5 MB, a third of tuisup's start-up. tomlkit is only needed for what tomllib
    does not do: a readable message and position for a syntax error (here), and writing
    the file back with its comments intact.
    """
    try:
        return tomllib.loads(text)
    except RecursionError:
        problem = Problem(display, 0, 0, "", "invalid TOML: nested too deeply")
    except ValueError as exc:  # TOMLDecodeError, or an integer of thousands of digits
        problem = _toml_problem(text, exc, display)
    raise ManifestError([problem]) from None


def _toml_problem(text: str, invalid: ValueError, display: str) -> Problem:
    import tomlkit
    import tomlkit.exceptions

    try:
        tomlkit.parse(text)
    except RecursionError:
        return Problem(display, 0, 0, "", "invalid TOML: nested too deeply")
    except Exception as exc:  # tomlkit raises more than ParseError for bad input
        return _tomlkit_problem(text, exc, display)
    # tomlkit accepted what tomllib did not: report tomllib's words.
    found = re.search(r"\(at line (\d+), column (\d+)\)$", str(invalid))
    line, col = (int(found.group(1)), int(found.group(2))) if found else (0, 0)
    message = re.sub(r" \(at (line \d+, column \d+|end of document)\)$", "", str(invalid))
    return Problem(display, line, col, "", message)


def _tomlkit_problem(text: str, exc: Exception, display: str) -> Problem:
    import tomlkit.exceptions

    message = str(exc)
    redefined = isinstance(exc, tomlkit.exceptions.KeyAlreadyPresent) or any(
        s in message for s in ("already exists", "Redefinition")
    )
    if redefined:
        where = Locator(text)
        where.run_safely()
        if where.duplicate is not None:
            path, (line, col) = where.duplicate
            return Problem(display, line, col, _dotted(path), "defined twice")
    line = getattr(exc, "line", 0)
    col = getattr(exc, "col", 0)
    message = re.sub(r" at line \d+ col \d+$", "", message) or type(exc).__name__
    # tomlkit counts columns from 0.
    return Problem(display, line, col + 1 if line else 0, "", message)


# --- validation ----------------------------------------------------------------------------


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
    """An array of paths or globs, relative to the service's cwd."""
    if not isinstance(raw, list):
        return ck.fail(path, f"expected an array of paths or globs, got {_describe(raw)}")
    bad = [i for i, item in enumerate(raw) if not isinstance(item, str) or not item.strip()]
    for i in bad:
        ck.fail((*path, i), f"expected a path or glob, got {_describe(raw[i])}")
    absolute = [i for i, item in enumerate(raw) if i not in bad and item.startswith("/")]
    for i in absolute:
        ck.fail((*path, i), f"expected a path relative to cwd, got {_quote(raw[i])}")
    return None if bad or absolute else tuple(raw)


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


# --- tables --------------------------------------------------------------------------------

_HOST_CHECKS: dict[str, _Check] = {
    "shutdown_timeout": _number(0, above=True),
    "log_lines": _integer(100),
    "reload": _bool,
}

_SERVICE_CHECKS: dict[str, _Check] = {
    "shell": _bool,
    "cwd": _directory,
    "env": _env,
    "env_file": _env_file,
    "autostart": _bool,
    "restart": _choice(RestartPolicy),
    "backoff": _choice(BackoffKind),
    "backoff_delay": _number(0),
    "backoff_max": _number(0),
    "jitter": _number(0, high=1),
    "max_restarts": _integer(0),
    "restart_window": _number(0, above=True),
    "success_exit_codes": _exit_codes,
    "stop_signal": _signal,
    "stop_timeout": _number(0, above=True),
    "watch": _patterns,
    "watch_ignore": _patterns,
    "watch_debounce": _integer(0),
}
_SERVICE_KEYS = ("command", *_SERVICE_CHECKS, "target", "executor")
_DEFAULT = ServiceSpec(name="", argv=("",), command="", cwd=Path("/"))
_EXECUTORS = tuple(kind.value for kind in ExecutorKind)
_TARGET = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def _checked(
    ck: _Checker,
    base: Key,
    table: Mapping[str, Any],
    checks: Mapping[str, _Check],
    known: Sequence[str],
) -> dict[str, Any]:
    """Run each key's check; return the valid values and record problems for the rest."""
    values: dict[str, Any] = {}
    for key, raw in table.items():
        if key in checks:
            value = checks[key](ck, (*base, key), raw)
            if value is not None:
                values[key] = value
        elif key not in known:
            ck.unknown((*base, key), known)
    return values


def _host_settings(ck: _Checker, raw: object) -> HostSettings | None:
    table = _table(ck, ("tuisup",), raw)
    if table is None:
        return None
    known = ("log_dir", *_HOST_CHECKS)
    values = _checked(ck, ("tuisup",), table, _HOST_CHECKS, known)
    log_dir: Path | None = ck.root / ".tuisup" / "logs"
    if "log_dir" in table:
        raw_dir = table["log_dir"]
        if raw_dir is False:
            log_dir = None
        elif isinstance(raw_dir, str) and raw_dir:
            log_dir = _path(ck, ("tuisup", "log_dir"), raw_dir)
        else:
            ck.fail(("tuisup", "log_dir"), f"expected a path or false, got {_describe(raw_dir)}")
    return HostSettings(log_dir=log_dir, **values)


def _services(ck: _Checker, raw: object) -> dict[str, ServiceSpec]:
    if raw is None or raw == {}:
        line, col = ck.where.find(("services",), key=True)
        ck.problems.append(
            Problem(ck.display, line or 1, col or 1, "services", "no services defined")
        )
        return {}
    table = _table(ck, ("services",), raw)
    specs = [_service(ck, str(name), value) for name, value in (table or {}).items()]
    ordered = sorted((spec for spec in specs if spec is not None), key=lambda spec: spec.line)
    return {spec.name: spec for spec in ordered}


def _service(ck: _Checker, name: str, raw: object) -> ServiceSpec | None:
    base: Key = ("services", name)
    before = len(ck.problems)
    if not _NAME.fullmatch(name):
        rule = 'letters, digits, "-" and "_", starting with a letter, at most 64 characters'
        ck.fail(base, f"invalid service name {_quote(name)}: use {rule}", key=True)
    table = _table(ck, base, raw)
    if table is None:
        return None
    values = _checked(ck, base, table, _SERVICE_CHECKS, _SERVICE_KEYS)
    executor = _check_kind(ck, base, table)
    command: _Command | None = None
    if "command" in table:
        command = _command(ck, (*base, "command"), table["command"], table.get("shell") is True)
    elif "target" in table:
        target = _target(ck, (*base, "target"), table["target"])
        command = ((), target) if target else None
        values["target"] = target
    _check_backoff(ck, base, table, values)
    if command is None or len(ck.problems) > before:
        return None
    values["executor"] = executor
    env_file, file_env = values.pop("env_file", (None, {}))
    values["env"] = {**file_env, **values.get("env", {})}
    values.setdefault("cwd", ck.root)
    line = ck.where.find(base, key=True)[0]
    return ServiceSpec(
        name=name, argv=command[0], command=command[1], env_file=env_file, line=line, **values
    )


def _check_kind(ck: _Checker, base: Key, table: Mapping[str, Any]) -> ExecutorKind | None:
    """Check `command` against `target` and `executor`; return the executor (None: auto)."""
    executor = None
    if "executor" in table:
        raw = _one_of(ck, (*base, "executor"), table["executor"], _EXECUTORS)
        executor = ExecutorKind(raw) if raw is not None else None
    if "command" in table:
        if "target" in table:
            ck.fail((*base, "target"), "command and target are mutually exclusive", key=True)
        if executor not in (None, ExecutorKind.PROCESS):
            ck.fail((*base, "executor"), f'a command always runs as "process", got "{executor}"')
        return ExecutorKind.PROCESS
    if "target" not in table:
        ck.fail(base, 'missing required key "command" (or "target")', key=True)
        return ExecutorKind.PROCESS
    if "shell" in table:
        ck.fail((*base, "shell"), "shell applies to a command, not to a target", key=True)
    if executor is None or executor.in_process:
        where = f'executor = "{executor}"' if executor else "an in-process service"
        for key in ("env", "env_file", "stop_signal"):
            if key in table:
                ck.fail(
                    (*base, key),
                    f"{key} cannot apply to {where}: it shares tuisup's process; "
                    'use executor = "process" or "async-process"',
                    key=True,
                )
    return executor


def _target(ck: _Checker, path: Key, raw: object) -> str | None:
    """Return a `module:attribute` string."""
    text = _string(ck, path, raw)
    if text is None:
        return None
    if not _TARGET.fullmatch(text):
        return ck.fail(path, f'expected "module:attribute", got {_quote(text)}')
    return text


def _check_backoff(
    ck: _Checker, base: Key, table: Mapping[str, Any], values: Mapping[str, Any]
) -> None:
    """Check backoff_max >= backoff_delay, unless either already has a problem."""
    if any(key in table and key not in values for key in ("backoff_delay", "backoff_max")):
        return
    delay = values.get("backoff_delay", _DEFAULT.backoff_delay)
    most = values.get("backoff_max", _DEFAULT.backoff_max)
    if most < delay:
        key = "backoff_max" if "backoff_max" in table else "backoff_delay"
        ck.fail((*base, key), f"expected backoff_max >= backoff_delay, got {most:g} < {delay:g}")


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
