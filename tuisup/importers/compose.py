"""Provides the compose file reader: what of each service runs without a container runtime.

A service's command (`entrypoint` then `command`) runs on this machine as it is; what
only a container runtime gives (`image`, `build`, `volumes`, `ports`, `networks`, ...)
is a loss, and a service with an image but no command is left out. `tuisup export
compose` writes what this reads back: a `working_dir` under a mounted folder maps to that
folder, `profiles` to `autostart = false`, and its tcp and http probes to tcp and http
checks.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Any

from tuisup.importers.model import Imported, ImportFailure, seconds, service_name
from tuisup.importers.replicas import replicas, tuisups_own

_CONDITIONS = {
    "service_started": "started",
    "service_healthy": "healthy",
    "service_completed_successfully": "completed",
}
_RESTART = {
    "no": "never",
    "always": "always",
    "unless-stopped": "always",
    "on-failure": "on-failure",
}
_RUNTIME = {
    "image": "it runs on this machine, not in the image",
    "build": "nothing is built: the command runs on this machine",
    "volumes": "the service sees this machine's files",
    "ports": "the service listens on this machine's ports",
    "networks": "every service shares this machine's network",
    "network_mode": "every service shares this machine's network",
}
_HANDLED = {
    *("command", "entrypoint", "environment", "env_file", "working_dir", "depends_on"),
    *("healthcheck", "restart", "stop_signal", "stop_grace_period", "profiles"),
    *("deploy", "scale"),
}
_TCP = re.compile(r"socket\.create_connection\(\('([^']*)', (\d+)\), [\d.]+\)\.close\(\)")
_HTTP = re.compile(
    r"http\.client\.(HTTPS?)Connection\('([^']*)', (\d+), timeout=[\d.]+\)\n"
    r"c\.request\('GET', '([^']*)'\)\ns = c\.getresponse\(\)\.status\n"
    r"if not (?:s == (\d+)|200 <= s < 300):"
)
_CHILD = re.compile(
    r"exec python -m tuisup\.child (\S+) (\S+) (process|async-process) \d+ 3 \S+ 3>/dev/null"
)
_VARIABLE = re.compile(r"(?<!\$)\$(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)")


def read(text: str, origin: str, folder: Path, out_dir: Path) -> Imported:
    """Read a compose file.

    Args:
        text: The file's contents.
        origin: The file as messages show it (`tuisup.terminal.path_text`).
        folder: The compose file's folder: compose takes relative paths from there.
        out_dir: The manifest's folder: paths in it are relative to it.

    Raises:
        ImportFailure: The YAML is broken, or it is not a compose file with services.
    """
    import yaml

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{origin}:{mark.line + 1}:{mark.column + 1}" if mark else origin
        problem = getattr(exc, "problem", None) or str(exc)
        raise ImportFailure(f"{where}: invalid YAML: {problem}") from None
    services = document.get("services") if isinstance(document, dict) else None
    if not isinstance(services, dict) or not services:
        line = _line(text, ("services",)) or 1
        raise ImportFailure(f"{origin}:{line}: expected a compose file with a `services` mapping")
    made = Imported(
        origin,
        header=[
            f"Imported from {origin} by `tuisup import`: each command runs on this machine,",
            "with no container runtime.",
        ],
    )
    for key in document:
        if key in ("volumes", "networks", "configs", "secrets"):
            made.lose(None, key, "there is no container runtime to make them")
    names = {name: service_name(str(name)) for name in services}
    for name, raw in services.items():
        if not isinstance(raw, dict):
            at = _line(text, ("services", str(name))) or 1
            raise ImportFailure(f"{origin}:{at}: services.{name}: expected a mapping")
        _check_shape(text, origin, str(name), raw)
        _service(made, names[name], str(name), raw, folder, out_dir)
    tuisups_own(made)
    _check_dependencies(made)
    return made


def _count(value: object) -> bool:
    return type(value) is int and value >= 0


def _scalar(value: object) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _words(value: object) -> bool:
    return (
        value is None
        or isinstance(value, str)
        or (isinstance(value, list) and all(map(_scalar, value)))
    )


def _dependency(value: object) -> bool:
    if value is None:
        return True
    return isinstance(value, dict) and value.get("condition", "service_started") in _CONDITIONS


def _env_files(value: object) -> bool:
    items = value if isinstance(value, list) else [value]
    return all(
        isinstance(item, str) or (isinstance(item, dict) and isinstance(item.get("path"), str))
        for item in items
    )


def _check(value: object) -> bool:
    if not isinstance(value, dict):
        return False
    durations = ("interval", "timeout", "start_period")
    return (
        _words(value.get("test"))
        and all(seconds(value[key]) is not None for key in durations if key in value)
        and (type(value.get("retries", 1)) is int)
    )


_SHAPES: dict[str, tuple[Any, str]] = {
    "command": (_words, "a string or a list of strings"),
    "entrypoint": (_words, "a string or a list of strings"),
    "environment": (
        lambda v: (
            (isinstance(v, dict) and all(x is None or _scalar(x) for x in v.values()))
            or (isinstance(v, list) and all(isinstance(x, str) for x in v))
        ),
        "a mapping of names to values, or a list of NAME=VALUE",
    ),
    "env_file": (_env_files, "a path, or a list of paths"),
    "working_dir": (lambda v: isinstance(v, str), "a path"),
    "depends_on": (
        lambda v: (
            (isinstance(v, list) and all(isinstance(x, str) for x in v))
            or (isinstance(v, dict) and all(map(_dependency, v.values())))
        ),
        f"a list of services, or a mapping of services to a condition ({', '.join(_CONDITIONS)})",
    ),
    "healthcheck": (_check, "a mapping with a test, durations and an integer of retries"),
    "restart": (lambda v: isinstance(v, str), "a restart policy"),
    "stop_signal": (_scalar, "a signal"),
    "stop_grace_period": (lambda v: seconds(v) is not None, "a duration such as 10s"),
    "profiles": (lambda v: isinstance(v, list), "a list of profiles"),
    "volumes": (lambda v: isinstance(v, list), "a list of volumes"),
    "deploy": (
        lambda v: isinstance(v, dict) and _count(v.get("replicas", 0)),
        "a mapping whose replicas is a number",
    ),
    "scale": (_count, "a number of replicas"),
    "ports": (lambda v: isinstance(v, list), "a list of ports"),
}
"""What each key read must be: a value of another shape is an error at its line."""


def _check_shape(text: str, origin: str, name: str, raw: dict[str, Any]) -> None:
    for key, (fits, expected) in _SHAPES.items():
        if key in raw and raw[key] is not None and not fits(raw[key]):
            at = _line(text, ("services", name, key)) or _line(text, ("services", name)) or 1
            raise ImportFailure(f"{origin}:{at}: services.{name}.{key}: expected {expected}")


def _line(text: str, path: tuple[str, ...]) -> int | None:
    """The line of the value at `path` (keys from the top), as PyYAML's nodes know it."""
    import yaml

    node = yaml.compose(text, Loader=yaml.SafeLoader)
    for key in path:
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next((v for k, v in node.value if k.value == key), None)
    return None if node is None else node.start_mark.line + 1


def _service(
    made: Imported, name: str, original: str, raw: dict[str, Any], folder: Path, out: Path
) -> None:
    argv = _argv(raw.get("entrypoint")) + _argv(raw.get("command"))
    if not argv:
        what = f"image {raw['image']!r}" if "image" in raw else "a build"
        made.left_out.append(
            f"{name}: {what} with no command runs only in a container runtime: left out."
        )
        made.lose(name, "image" if "image" in raw else "build", "it has no command to run")
        return
    service = _command(raw, _unescaped(argv))
    cwd = _cwd(made, name, raw, folder, out)
    if cwd is not None:
        service["cwd"] = cwd
        if "working_dir" in raw:
            made.note(name, "cwd", f"working_dir {raw['working_dir']} in the container")
    _environment(made, name, raw, service, folder, out)
    _restart(made, name, raw.get("restart"), service)
    if "stop_signal" in raw:
        service["stop_signal"] = str(raw["stop_signal"]).removeprefix("SIG")
    if (grace := seconds(raw.get("stop_grace_period"))) is not None and grace > 0:
        service["stop_timeout"] = grace
    if raw.get("profiles"):  # a service in a profile starts only when it is asked for
        service["autostart"] = False
        made.note(name, "autostart", f"in profiles {', '.join(map(str, raw['profiles']))}")
    _depends_on(raw.get("depends_on"), service)
    check = _healthcheck(raw.get("healthcheck"))
    if check:
        service["healthcheck"] = check
    replicas(made, name, raw, service)
    made.services[name] = service
    image = f", image {raw['image']}" if "image" in raw else ""
    made.intro[name] = [f"compose service {original}{image}"]
    for key in raw:
        if key == "ports" and "port" in service:
            continue  # each replica's port, as tuisup gives them
        if key in _RUNTIME and not (key == "network_mode" and raw[key] == "host"):
            made.lose(name, key, _RUNTIME[key])
        elif key not in _HANDLED and key not in _RUNTIME and not str(key).startswith("x-"):
            made.lose(name, key, "tuisup has no such setting")
    for word in argv:
        for variable in _VARIABLE.findall(word):
            why = f"compose fills ${variable} in from its environment; tuisup runs it as written"
            made.lose(name, "command", why)


def _command(raw: dict[str, Any], argv: list[str]) -> dict[str, Any]:
    """The command as tuisup writes it: a string where compose had one, a shell's, a target."""
    if len(argv) == 3 and argv[:2] == ["/bin/sh", "-c"]:
        if child := _CHILD.fullmatch(argv[2]):  # a Python target, as export wrote it
            return {"target": child.group(2), "executor": child.group(3)}
        return {"command": argv[2], "shell": True}
    written = raw.get("command") if raw.get("entrypoint") is None else None
    return {"command": _unescaped(written) if isinstance(written, str) else argv}


def _argv(raw: object) -> list[str]:
    if isinstance(raw, str):
        return shlex.split(raw)
    if isinstance(raw, list):
        return [str(word) for word in raw]
    return []


def _unescaped(value: Any) -> Any:
    """Compose's `$$` is one dollar sign."""
    if isinstance(value, str):
        return value.replace("$$", "$")
    return [_unescaped(word) for word in value]


def _cwd(made: Imported, name: str, raw: dict[str, Any], folder: Path, out: Path) -> str | None:
    """The folder on this machine that the container's `working_dir` is, if a volume says."""
    inside = raw.get("working_dir")
    if inside is None:
        return _relative(folder, out)
    target = PurePosixPath(str(inside))
    for volume in raw.get("volumes") or []:
        if isinstance(volume, dict):  # the long syntax
            source, rest = str(volume.get("source", "")), str(volume.get("target", ""))
        else:
            source, _, rest = str(volume).partition(":")
        mounted = PurePosixPath(rest.split(":")[0]) if rest else None
        if mounted is None or not source.startswith((".", "/", "~")):
            continue  # a named volume, not a folder of this machine
        if target == mounted or mounted in target.parents:
            here = Path(os.path.expanduser(source))
            here = here if here.is_absolute() else folder / here
            here = here / target.relative_to(mounted)
            if here.is_dir():
                return _relative(here, out)
            made.lose(name, "working_dir", f"{here} (mounted at {inside}) is not a folder here")
            return _relative(folder, out)
    made.lose(name, "working_dir", f"{inside} is a folder in the container")
    return _relative(folder, out)


def _relative(path: Path, start: Path) -> str | None:
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(start))
    return None if relative == "." else relative


def _environment(
    made: Imported, name: str, raw: dict[str, Any], service: dict[str, Any], folder: Path, out: Path
) -> None:
    env = raw.get("environment")
    pairs: dict[str, str] = {}
    if isinstance(env, dict):
        pairs = {str(k): _text(v) for k, v in env.items() if v is not None}
    elif isinstance(env, list):
        for item in map(str, env):
            key, sep, value = item.partition("=")
            if sep:  # `KEY` alone passes this machine's value on, as tuisup does anyway
                pairs[key] = value
    files = raw.get("env_file")
    files = files if isinstance(files, list) else [files] if files is not None else []
    paths = [f["path"] if isinstance(f, dict) else str(f) for f in files]
    if paths and (folder / paths[0]).is_file():
        service["env_file"] = _relative(folder / paths[0], out) or paths[0]
    elif paths:
        made.lose(name, "env_file", f"{folder / paths[0]} is not a file here")
    for extra in paths[1:]:
        made.lose(name, "env_file", f"tuisup reads one env file: {extra} is not read")
    if pairs:
        service["env"] = {k: v.replace("$$", "$") for k, v in pairs.items()}


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _restart(made: Imported, name: str, raw: object, service: dict[str, Any]) -> None:
    if raw is None:
        return
    policy, _, budget = str(raw).partition(":")
    if policy not in _RESTART:
        made.lose(name, "restart", f"unknown policy {raw!r}: tuisup's default applies")
        return
    service["restart"] = _RESTART[policy]
    if budget.isdigit():
        service["max_restarts"] = int(budget)


def _depends_on(raw: object, service: dict[str, Any]) -> None:
    if isinstance(raw, list):
        service["depends_on"] = [service_name(str(n)) for n in raw]
    elif isinstance(raw, dict):
        service["depends_on"] = {
            service_name(str(dep)): _CONDITIONS.get(
                (value or {}).get("condition", "service_started"), "started"
            )
            for dep, value in raw.items()
        }


def _healthcheck(raw: object) -> dict[str, Any] | None:
    if not isinstance(raw, dict) or raw.get("disable"):
        return None
    test = raw.get("test")
    check: dict[str, Any] = {}
    if isinstance(test, str):
        check["command"] = _unescaped(test)
    elif isinstance(test, list) and test and test[0] in ("CMD", "CMD-SHELL"):
        words = _unescaped([str(w) for w in test[1:]])
        probe = _probe(words) if test[0] == "CMD" else None
        check.update(probe or {"command": words if test[0] == "CMD" else " ".join(words)})
    else:
        return None
    for key in ("interval", "timeout", "start_period"):
        if (value := seconds(raw.get(key))) is not None and (value > 0 or key == "start_period"):
            check[key] = value
    if isinstance(raw.get("retries"), int) and raw["retries"] >= 1:
        check["retries"] = raw["retries"]
    return check


def _probe(words: list[str]) -> dict[str, Any] | None:
    """The tcp or http check that `tuisup export compose` wrote as a Python probe."""
    if len(words) != 3 or words[:2] != ["python", "-c"]:
        return None
    if tcp := _TCP.search(words[2]):
        host, port = tcp.groups()
        return {"tcp": int(port) if host == "127.0.0.1" else f"{host}:{port}"}
    if http := _HTTP.search(words[2]):
        scheme, host, port, path, status = http.groups()
        found: dict[str, Any] = {"http": f"{scheme.lower()}://{host}:{port}{path}"}
        if status:
            found["status"] = int(status)
        return found
    return None


def _check_dependencies(made: Imported) -> None:
    """Drop what tuisup would reject: a dependency left out, `healthy` with no check."""
    for name, service in made.services.items():
        needs = service.get("depends_on")
        if needs is None:
            continue
        conditions = needs if isinstance(needs, dict) else dict.fromkeys(needs, "started")
        kept: dict[str, str] = {}
        for dep, condition in conditions.items():
            if dep not in made.services:
                made.lose(name, f"depends_on.{dep}", f"{dep} is left out: nothing to wait for")
            elif condition == "healthy" and "healthcheck" not in made.services[dep]:
                made.lose(name, f"depends_on.{dep}", f"{dep} has no healthcheck: waits for started")
                kept[dep] = "started"
            else:
                kept[dep] = condition
        if not kept:
            del service["depends_on"]
        elif isinstance(needs, list) and all(c == "started" for c in kept.values()):
            service["depends_on"] = list(kept)
        else:
            service["depends_on"] = kept
