"""Provides the services.toml loader: parsing, validation and precise problem reports."""

# `return ck.fail(...)` records a problem and returns None, the "invalid" result of every check.
# mypy: disable-error-code="func-returns-value"

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tuisup.manifest.checks import (
    ManifestError,
    Problem,
    _bool,
    _Check,
    _Checker,
    _choice,
    _Command,
    _command,
    _describe,
    _directory,
    _dotted,
    _env,
    _env_file,
    _exit_codes,
    _integer,
    _log_folder,
    _number,
    _one_of,
    _path,
    _patterns,
    _quote,
    _signal,
    _string,
    _table,
)
from tuisup.manifest.deps import check_graph, depends_on, healthcheck
from tuisup.manifest.locator import Key, Locator
from tuisup.spec import (
    BackoffKind,
    ExecutorKind,
    HostSettings,
    Manifest,
    RestartPolicy,
    ServiceSpec,
)


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


def _unreadable(display: str, reason: str) -> Problem:
    return Problem(display, 0, 0, "", f"cannot read: {reason}")


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
    "start_timeout": _number(0, above=True),
    "watch": _patterns,
    "watch_ignore": _patterns,
    "watch_debounce": _integer(0),
    "depends_on": depends_on,
    "healthcheck": healthcheck,
    "restart_on_unhealthy": _bool,
    "restart_dependents": _bool,
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
    if log_dir is not None and (problem := _log_folder(log_dir)) is not None:
        _log_dir_problem(ck, problem, given="log_dir" in table)
        return None
    return HostSettings(log_dir=log_dir, **values)


def _log_dir_problem(ck: _Checker, problem: str, *, given: bool) -> None:
    """Report an unusable log folder at its key, or (the default) at `[tuisup]` or line 1."""
    if given:
        ck.fail(("tuisup", "log_dir"), problem)
        return
    line, col = ck.where.find(("tuisup",), key=True)
    text = f"{problem} (the default; set log_dir in [tuisup])"
    ck.problems.append(Problem(ck.display, line or 1, col or 1, "tuisup.log_dir", text))


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
    services = {spec.name: spec for spec in ordered}
    check_graph(ck, table or {})
    return services


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
    _check_unhealthy(ck, base, table, values)
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


def _check_unhealthy(
    ck: _Checker, base: Key, table: Mapping[str, Any], values: Mapping[str, Any]
) -> None:
    """restart_on_unhealthy needs a health check, and a policy that restarts failures."""
    if not values.get("restart_on_unhealthy"):
        return
    path = (*base, "restart_on_unhealthy")
    if "healthcheck" not in table:
        ck.fail(path, "needs a healthcheck", key=True)
    elif values.get("restart") is RestartPolicy.NEVER:
        message = 'an unhealthy run is a failure, and restart = "never" restarts none'
        ck.fail(path, message, key=True)
