"""Provides `load_manifest`: a services.toml read, checked table by table, into a Manifest."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from tuisup.manifest import checks
from tuisup.manifest.deps import check_graph, depends_on, healthcheck
from tuisup.manifest.files import TooLarge, read_text
from tuisup.manifest.groups import assign_groups, groups
from tuisup.manifest.hooks import check_reachable, on_table
from tuisup.manifest.listen import check_listened, check_listener, listen
from tuisup.manifest.locator import Key, Locator
from tuisup.manifest.problems import (
    INVALID,
    Checker,
    Invalid,
    ManifestError,
    Problem,
    describe,
    quote,
)
from tuisup.manifest.replicas import (
    MAX_REPLICAS,
    check_placeholders,
    check_port_variables,
    check_ports,
    instance,
    instances,
    port,
    port_env,
    replicas,
)
from tuisup.manifest.syntax import parse_toml
from tuisup.model.record import replace
from tuisup.spec import (
    BackoffKind,
    ExecutorKind,
    ExportSettings,
    HostSettings,
    LogFormat,
    LogOptions,
    Manifest,
    RestartPolicy,
    ServiceSpec,
    Template,
)

NUL_ESCAPES = ("\\u0000", "\\U00000000", "\\x00")
"""How TOML writes a NUL: a raw one is refused by the parser (`\\x00`: TOML 1.1, which
the tomllib of later Pythons reads)."""


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
        text = read_text(display)
        resolved = Path(display).resolve()
    except TooLarge as exc:
        raise ManifestError([Problem.of_file(display, str(exc))]) from None
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
    document = parse_toml(text, display)
    where = Locator(text)
    where.run_safely()
    ck = Checker(display, path.parent, where)
    for name in document:
        if name not in ("tuisup", "services", "groups"):
            ck.unknown((name,), ("tuisup", "services", "groups"))
    settings = _host_settings(ck, document.get("tuisup", {}))
    defaults = settings.logs if isinstance(settings, HostSettings) else LogOptions()
    services, templates = _services(ck, document.get("services"), defaults)
    raw_services = document.get("services")
    found = groups(
        ck, document.get("groups"), raw_services if isinstance(raw_services, dict) else {}
    )
    services = {spec.name: spec for spec in assign_groups(services.values(), found)}
    if any(escape in text for escape in NUL_ESCAPES):
        checks.check_nul(ck, document)
    if ck.problems:
        ck.problems.sort(key=lambda p: (p.file != display, p.file, p.line, p.col))
        raise ManifestError(ck.problems)
    assert settings is not INVALID  # only when a problem was recorded
    return Manifest(
        path=path, settings=settings, services=services, templates=templates, groups=found
    )


def _unreadable(display: str, reason: str) -> Problem:
    return Problem.of_file(display, f"cannot read: {reason}")


# --- tables --------------------------------------------------------------------------------


def _log_dir(ck: Checker, path: Key, raw: object) -> Path | None | Invalid:
    """Check the folder of log files, or `false` (None) for none."""
    if raw is False:
        return None
    if isinstance(raw, str) and raw:
        return checks.resolved_path(ck, path, raw)
    return ck.fail(path, f"expected a path or false, got {describe(raw)}")


def _socket(ck: Checker, path: Key, raw: object) -> Path | Invalid:
    """Check the control socket's path: absolute from the manifest's folder, not resolved.

    Not resolved: a symlink at the path must be seen as one when the host starts (and left
    alone), not followed to wherever it points.
    """
    text = checks.string(ck, path, raw)
    if text is INVALID:
        return INVALID
    if not text or text.endswith("/"):
        return ck.fail(path, f"expected the path of a socket file, got string {quote(text)}")
    if "\0" in text:
        return ck.fail(path, "a path cannot contain NUL characters")
    return Path(os.path.abspath(ck.root / os.path.expanduser(text)))


METRICS_ADDRESS = ("127.0.0.1", 9464)
"""Where `metrics = true` serves, and the host of an address written without one."""


def _metrics(ck: Checker, path: Key, raw: object) -> tuple[str, int] | None | Invalid:
    """Check where metrics are served: false, true, a port, or `HOST:PORT`.

    Without a host it is loopback: serving beyond the machine has to be written out.
    """
    if isinstance(raw, bool):
        return METRICS_ADDRESS if raw else None
    if isinstance(raw, int):
        raw = str(raw)
    if not isinstance(raw, str):
        return ck.fail(path, f'expected "HOST:PORT", a port or a boolean, got {describe(raw)}')
    address = checks.host_port(raw, METRICS_ADDRESS[0])
    if address is None:
        return ck.fail(path, f'expected "HOST:PORT" with a port from 1 to 65535, got {quote(raw)}')
    return address


_LOG_CHECKS: dict[str, checks.Check] = {
    "log_max_bytes": checks.integer(0),
    "log_backups": checks.integer(0),
    "log_timestamps": checks.boolean,
    "log_format": checks.choice(LogFormat),
}
"""The keys of `LogOptions`, in `[tuisup]` (the defaults) and in each service."""


def _log_options(values: dict[str, Any], defaults: LogOptions) -> LogOptions:
    """Take the `log_*` keys out of `values`, over `defaults`."""
    given = {key.removeprefix("log_"): values.pop(key) for key in _LOG_CHECKS if key in values}
    return replace(defaults, **given)


def _export(ck: Checker, path: Key, raw: object) -> ExportSettings | Invalid:
    """Check `[tuisup.export]`: what `tuisup export` needs that the services don't say."""
    table = checks.table(ck, path, raw)
    if table is INVALID:
        return INVALID
    before = len(ck.problems)
    for key in table:
        if key != "image":
            ck.unknown((*path, key), ("image",))
    image: str | Invalid | None = None
    if "image" in table:
        image = checks.string(ck, (*path, "image"), table["image"])
        if image == "":
            image = ck.fail((*path, "image"), 'expected an image name, got string ""')
    if len(ck.problems) > before or image is INVALID:
        return INVALID
    return ExportSettings(image=image)


_HOST_CHECKS: dict[str, checks.Check] = {
    "log_dir": _log_dir,
    **_LOG_CHECKS,
    "metrics": _metrics,
    "export": _export,
    "socket": _socket,
    "shutdown_timeout": checks.number(0, above=True),
    "log_lines": checks.integer(100),
    "reload": checks.boolean,
}

_SERVICE_CHECKS: dict[str, checks.Check] = {
    "shell": checks.boolean,
    "cwd": checks.directory,
    "env": checks.env,
    "env_file": checks.env_file,
    "autostart": checks.boolean,
    "restart": checks.choice(RestartPolicy),
    "backoff": checks.choice(BackoffKind),
    "backoff_delay": checks.number(0),
    "backoff_max": checks.number(0),
    "jitter": checks.number(0, high=1),
    "max_restarts": checks.integer(0),
    "restart_window": checks.number(0, above=True),
    "success_exit_codes": checks.exit_codes,
    "stop_signal": checks.posix_signal,
    "stop_timeout": checks.number(0, above=True),
    "start_timeout": checks.number(0, above=True),
    "watch": checks.patterns,
    "watch_ignore": checks.patterns,
    "watch_debounce": checks.integer(0),
    "depends_on": depends_on,
    "healthcheck": healthcheck,
    "restart_on_unhealthy": checks.boolean,
    "restart_dependents": checks.boolean,
    # Event hooks (the `on` table becomes the spec's `hooks`).
    "on": on_table,
    "hook_timeout": checks.number(0, above=True),
    # listener services
    "listen": listen,
    "listen_buffer": checks.integer(1),
    **_LOG_CHECKS,
    # replicas and ports (manifest.replicas)
    "replicas": replicas,
    "port": port,
}
_SERVICE_KEYS = ("command", *_SERVICE_CHECKS, "target", "executor")
_DEFAULT = ServiceSpec(name="", argv=("",), command="", cwd=Path("/"))
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_TARGET = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def _checked(
    ck: Checker,
    base: Key,
    table: Mapping[str, object],
    known_checks: Mapping[str, checks.Check],
    known: Sequence[str],
) -> dict[str, Any]:
    """Run each key's check; return the valid values and record problems for the rest."""
    values: dict[str, Any] = {}
    for key, raw in table.items():
        if key in known_checks:
            value = known_checks[key](ck, (*base, key), raw)
            if value is not INVALID:
                values[key] = value
        elif key not in known:
            ck.unknown((*base, key), known)
    return values


def _host_settings(ck: Checker, raw: object) -> HostSettings | Invalid:
    table = checks.table(ck, ("tuisup",), raw)
    if table is INVALID:
        return INVALID
    values = _checked(ck, ("tuisup",), table, _HOST_CHECKS, tuple(_HOST_CHECKS))
    values["logs"] = _log_options(values, LogOptions())
    if "log_dir" in table and "log_dir" not in values:
        return INVALID
    log_dir = values.setdefault("log_dir", ck.root / ".tuisup" / "logs")
    if log_dir is not None and (problem := checks.log_folder_problem(log_dir)) is not None:
        _log_dir_problem(ck, problem, given="log_dir" in table)
        return INVALID
    return HostSettings(**values)


def _log_dir_problem(ck: Checker, problem: str, *, given: bool) -> None:
    """Report an unusable log folder at its key, or (the default) at `[tuisup]` or line 1."""
    if given:
        ck.fail(("tuisup", "log_dir"), problem)
        return
    line, col = ck.where.find(("tuisup",), key=True)
    text = f"{problem} (the default; set log_dir in [tuisup])"
    ck.problems.append(
        Problem(file=ck.display, line=line or 1, col=col or 1, key="tuisup.log_dir", message=text)
    )


def _services(
    ck: Checker, raw: object, defaults: LogOptions
) -> tuple[dict[str, ServiceSpec], dict[str, Template]]:
    if raw is None or raw == {}:
        line, col = ck.where.find(("services",), key=True)
        ck.problems.append(
            Problem(
                file=ck.display,
                line=line or 1,
                col=col or 1,
                key="services",
                message="no services defined",
            )
        )
        return {}, {}
    tables = checks.table(ck, ("services",), raw)
    if tables is INVALID:
        return {}, {}
    templates = {
        name: _template(name, table, ck.where.find(("services", name), key=True)[0])
        for name, table in tables.items()
        if isinstance(table, dict) and ("replicas" in table or "port" in table)
    }
    env = port_env(templates)
    make = partial(service_spec, defaults=defaults)
    specs: list[ServiceSpec] = []
    for name, value in tables.items():
        template = templates.get(name)
        if template is not None:
            check_placeholders(ck, name, template.table)
            made = instances(ck, template, template.replicas, env, make)
            specs.extend(made if made is not INVALID else [])
        elif (spec := make(ck, str(name), value)) is not INVALID:
            specs.append(instance(spec, None, None, env))
    specs.sort(key=lambda s: s.line)
    check_graph(ck, tables)
    check_listened(ck, tables)
    check_ports(ck, templates)
    check_port_variables(ck, templates)
    return {spec.name: spec for spec in specs}, templates


def _template(name: str, table: dict[str, Any], line: int) -> Template:
    """What it takes to make a table's instances again (a value with a problem: as none)."""
    count, first = table.get("replicas"), table.get("port")
    if "replicas" in table and (type(count) is not int or not 0 <= count <= MAX_REPLICAS):
        count = 1  # reported when the instance is checked
    if type(first) is not int or not 1 <= first <= 65535:
        first = None
    return Template(name=name, replicas=count, port=first, table=table, line=line)


def service_spec(
    ck: Checker, name: str, raw: object, defaults: LogOptions
) -> ServiceSpec | Invalid:
    """Check one `[services.NAME]` table and make its spec (before replicas and ports).

    Args:
        ck: Where problems go.
        name: The table's (declared) name.
        raw: The table.
        defaults: The `log_*` keys of `[tuisup]`, which its own override.
    """
    base: Key = ("services", name)
    before = len(ck.problems)
    if not _NAME.fullmatch(name):
        rule = 'letters, digits, "-" and "_", starting with a letter, at most 64 characters'
        ck.fail(base, f"invalid service name {quote(name)}: use {rule}", key=True)
    table = checks.table(ck, base, raw)
    if table is INVALID:
        return INVALID
    values = _checked(ck, base, table, _SERVICE_CHECKS, _SERVICE_KEYS)
    executor = _check_kind(ck, base, table)
    command = _command_or_target(ck, base, table, values)
    _check_backoff(ck, base, table, values)
    _check_unhealthy(ck, base, table, values)
    check_reachable(ck, base, table)
    check_listener(ck, base, table, executor)
    if command is INVALID or len(ck.problems) > before:
        return INVALID
    if "on" in values:
        values["hooks"] = values.pop("on")
    values.pop("replicas", None)  # an instance's own are set by manifest.replicas
    values.pop("port", None)
    values["executor"] = executor
    values["logs"] = _log_options(values, defaults)
    env_file, file_env = values.pop("env_file", (None, {}))
    values["env"] = {**file_env, **values.get("env", {})}
    values.setdefault("cwd", ck.root)
    line = ck.where.find(base, key=True)[0]
    return ServiceSpec(
        name=name, argv=command[0], command=command[1], env_file=env_file, line=line, **values
    )


def _command_or_target(
    ck: Checker, base: Key, table: Mapping[str, object], values: dict[str, Any]
) -> checks.Command | Invalid:
    """Check the command, or the target (put in `values`); return argv and display form."""
    if "command" in table:
        shell = table.get("shell") is True
        return checks.command(ck, (*base, "command"), table["command"], shell)
    if "target" not in table:
        return INVALID  # _check_kind reported the missing key
    target = _target(ck, (*base, "target"), table["target"])
    if target is INVALID:
        return INVALID
    values["target"] = target
    return (), target


def _check_kind(ck: Checker, base: Key, table: Mapping[str, object]) -> ExecutorKind | None:
    """Check `command` against `target` and `executor`; return the executor (None: auto)."""
    executor = None
    if "executor" in table:
        chosen = checks.one_of(ck, (*base, "executor"), table["executor"], ExecutorKind)
        # One that is not valid counts as not given, so the keys it rules are still checked.
        executor = None if chosen is INVALID else chosen
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
    shares = "it shares tuisup's process"
    for key in ("env", "env_file", "stop_signal"):
        if key in table and (problem := checks.in_process_problem(key, executor, shares)):
            ck.fail((*base, key), problem, key=True)
    return executor


def _target(ck: Checker, path: Key, raw: object) -> str | Invalid:
    """Check a `module:attribute` string."""
    text = checks.string(ck, path, raw)
    if text is INVALID:
        return INVALID
    if not _TARGET.fullmatch(text):
        return ck.fail(path, f'expected "module:attribute", got {quote(text)}')
    return text


def _check_backoff(
    ck: Checker, base: Key, table: Mapping[str, Any], values: Mapping[str, Any]
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
    ck: Checker, base: Key, table: Mapping[str, Any], values: Mapping[str, Any]
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
