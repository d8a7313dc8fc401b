"""Provides what every export target shares: the source, the losses, probes and commands.

A loss is named after the key the manifest writes: a setting left at its default asks
for nothing, so only a key that is written (and whose value means something the target
cannot do) is reported. `Source.written` holds those keys, read from the file again.
"""

from __future__ import annotations

import math
import shlex
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from tuisup.export.tables import Table, declared_tables
from tuisup.manifest.files import read_text
from tuisup.manifest.replicas import FILLED, port_env, tuisup_given
from tuisup.spec import (
    GroupSpec,
    GroupStrategy,
    HealthCheck,
    HealthKind,
    Manifest,
    ServiceSpec,
)

DEFAULT_IMAGE = "python:3.12-slim"
"""The container image when `[tuisup.export] image` is not set."""
APP = PurePosixPath("/app")
"""Where the project folder is in a container."""


@dataclass(frozen=True, slots=True)
class Loss:
    """A setting that the target cannot express: one warning line."""

    service: str | None
    """The service (or group) whose key it is; None for a key of `[tuisup]`."""
    key: str
    """The key as the manifest writes it (`watch`, `on.started`, `healthcheck.status`)."""
    target: str
    """`compose`, `k8s` or `systemd`."""
    why: str
    """What is lost, in a few words."""
    section: str = "service"
    """What `service` names: a `service`, or a `group` (`[groups.NAME]`)."""

    def __str__(self) -> str:
        where = f"{self.section} {self.service}" if self.service else "[tuisup]"
        return f"{where}: key {self.key} has no equivalent in {self.target}: {self.why}"


@dataclass
class Export:
    """What an export made: files by name (in order), and what they could not say."""

    files: dict[str, str] = field(default_factory=dict)
    losses: list[Loss] = field(default_factory=list)
    together: str = ""
    """Every file in one text, for stdout (the one file, YAML documents, units in turn)."""


@dataclass(frozen=True, slots=True)
class Options:
    """How the command line asked for the export."""

    out_dir: Path
    """The folder the files go to: relative paths in them start there."""
    user: bool = False
    """systemd: user units (`systemctl --user`), not system ones."""
    systemd_version: int | None = None
    """systemd: the version the units are for; None: the newest."""


@dataclass(frozen=True, slots=True)
class Source:
    """A manifest to export, with the keys its file writes."""

    manifest: Manifest
    tables: Mapping[str, Mapping[str, Any]]
    """Each service's table as written."""
    host: Mapping[str, Any]
    """The `[tuisup]` table as written."""
    groups: Mapping[str, Mapping[str, Any]]
    """Each `[groups.NAME]` table as written."""
    declared: tuple[Table, ...]
    """The declared tables in file order, each with its instances."""

    @property
    def image(self) -> str:
        """The container image of compose and Kubernetes services."""
        return self.manifest.settings.export.image or DEFAULT_IMAGE

    def written(self, service: str) -> Mapping[str, Any]:
        """The keys `service`'s table writes, and their values as written."""
        return self.tables.get(service, {})

    def table(self, name: str) -> Table:
        """The declared table `name`."""
        return next(table for table in self.declared if table.name == name)

    def dependents(self, name: str) -> dict[str, str]:
        """The services that depend on `name`, and the condition each waits for."""
        return {
            other.name: other.depends_on[name].value
            for other in (table.spec for table in self.declared)
            if name in other.depends_on
        }


def read_source(manifest: Manifest) -> Source:
    """Read the manifest's file again for the keys it writes (the loader has checked it)."""
    document = tomllib.loads(read_text(manifest.path).removeprefix("\ufeff"))
    services, host = document.get("services", {}), document.get("tuisup", {})
    declared = declared_tables(manifest, list(services))
    return Source(manifest, services, host, document.get("groups", {}), declared)


def placeholders(source: Source, name: str) -> list[str]:
    """The placeholders (`{replica}`, `{port}`) a table's command, env and check use."""
    written = source.written(name)
    text = repr([written.get(key) for key in FILLED])
    return [word for word in ("{replica}", "{port}") if word in text]


def tuisup_env(source: Source, spec: ServiceSpec) -> dict[str, str]:
    """The variables tuisup itself sets for a service (ports, its replica), as it sets them.

    One that the service's env or env file sets otherwise is theirs, not tuisup's.
    """
    # In tuisup's process it gets none; made a process here, it still gets none.
    given = tuisup_given(spec, port_env(source.manifest.templates), spec.replica, spec.port)
    return {k: v for k, v in given.items() if spec.env.get(k) == v}


def written_env(source: Source, spec: ServiceSpec) -> dict[str, str]:
    """The variables the table's `env` writes, with the values of `spec` (placeholders put in)."""
    return {k: spec.env[k] for k in source.written(spec.name).get("env", {})}


Rule = tuple[str, Callable[[ServiceSpec], bool] | None]
"""Why a written key is lost, and when (None: whatever its value)."""

TUISUP_ONLY: dict[str, Rule] = {
    "watch": ("files that change do not restart it", None),
    "watch_ignore": ("files that change do not restart it", None),
    "watch_debounce": ("files that change do not restart it", None),
    "restart_dependents": (
        "its dependents are not restarted when it starts again",
        lambda s: s.restart_dependents,
    ),
    "jitter": ("restart delays are not spread at random", lambda s: s.jitter > 0),
    "hook_timeout": ("hooks run only under tuisup", None),
    "listen": ("tuisup's events exist only under tuisup: its stdin is empty", None),
    "listen_buffer": ("tuisup's events exist only under tuisup", None),
    "log_max_bytes": ("the target keeps the output", None),
    "log_backups": ("the target keeps the output", None),
    "log_timestamps": ("the target keeps the output", None),
    "log_format": ("the target keeps the output", None),
}
"""Service keys that only tuisup can do, whatever the target."""
HOST_KEYS = {
    "log_dir": "the target keeps the output",
    "shutdown_timeout": "each service's own stop timeout applies",
    "log_lines": "the target keeps the output",
    "reload": "edit and export again",
    "socket": "there is no running tuisup to control",
    "log_max_bytes": "the target keeps the output",
    "log_backups": "the target keeps the output",
    "log_timestamps": "the target keeps the output",
    "log_format": "the target keeps the output",
    "metrics": "tuisup's metrics exist only under tuisup",
}


def losses(source: Source, target: str, rules: Mapping[str, Rule]) -> list[Loss]:
    """The losses of every service and of `[tuisup]` under `rules` and `TUISUP_ONLY`.

    Args:
        source: The manifest and the keys it writes.
        target: The target's name, for the messages.
        rules: The target's own lost keys (they take the place of `TUISUP_ONLY`'s).
    """
    found = [Loss(None, key, target, why) for key, why in HOST_KEYS.items() if key in source.host]
    every = {**TUISUP_ONLY, **rules}
    for spec in (table.spec for table in source.declared):
        written = source.written(spec.name)
        for key in written:
            if key == "on":
                found += [
                    Loss(spec.name, f"on.{event}", target, "hooks run only under tuisup")
                    for event in written["on"]
                ]
            elif key in every and ((when := every[key][1]) is None or when(spec)):
                found.append(Loss(spec.name, key, target, every[key][0]))
        if spec.in_process:
            kind = f'executor "{spec.executor}"' if spec.executor else "with no executor, it"
            why = f"{kind} runs in tuisup's process; here it is a process of its own"
            found.append(Loss(spec.name, "executor", target, why))
    return found


def dump_yaml(data: object) -> str:
    """YAML for people: keys in the order given, text of several lines as a block."""
    import yaml  # only an export needs it

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: object) -> bool:
            return True  # a value used twice is written twice, not as &id001 and *id001

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, width=100, allow_unicode=True)


def seconds(value: float) -> int:
    """Whole seconds, rounded up, for targets that take no fractions (at least 1)."""
    return max(1, math.ceil(value))


def duration(value: float) -> str:
    """A Go-style duration, as compose writes them: `5s`, `1500ms`."""
    if value == int(value):
        return f"{int(value)}s"
    return f"{round(value * 1000)}ms"


def command_check(check: HealthCheck) -> tuple[str, ...] | None:
    """A command check's shell text, if it was written as a string (run by `/bin/sh -c`)."""
    argv = check.argv
    if len(argv) == 3 and argv[:2] == ("/bin/sh", "-c") and argv[2] == check.target:
        return (check.target,)
    return None


def probe_source(check: HealthCheck, host: str | None = None) -> str:
    """Python statements that fail (raise) unless a tcp or http check passes.

    Args:
        check: A tcp or http health check.
        host: Probe this host instead of the check's (another service's name).
    """
    where = repr(host or check.host)
    timeout = check.timeout
    if check.kind is HealthKind.TCP:
        return (
            f"import socket\nsocket.create_connection(({where}, {check.port}), {timeout}).close()"
        )
    assert check.kind is HealthKind.HTTP
    connection = "HTTPSConnection" if check.tls else "HTTPConnection"
    passes = f"s == {check.status}" if check.status is not None else "200 <= s < 300"
    return (
        "import http.client\n"
        f"c = http.client.{connection}({where}, {check.port}, timeout={timeout})\n"
        f"c.request('GET', {check.path!r})\n"
        "s = c.getresponse().status\n"
        f"if not {passes}:\n"
        "    raise OSError(f'HTTP status {s}')"
    )


def wait_source(check: HealthCheck, host: str | None = None, every: float = 1.0) -> str:
    """Python that returns once a tcp or http check passes, trying every `every` seconds."""
    body = "\n".join(f"        {line}" for line in probe_source(check, host).splitlines())
    return (
        f"import time\nwhile True:\n    try:\n{body}\n        break\n"
        f"    except OSError:\n        time.sleep({every})"
    )


def child_argv(spec: ServiceSpec, python: str, root: PurePosixPath | Path) -> tuple[str, ...]:
    """The command a Python target runs as: `python -m tuisup.child`, as tuisup starts it.

    The child reports to tuisup on a status descriptor (3 here); nobody reads it outside
    tuisup, so it goes to /dev/null.
    """
    assert spec.target is not None
    kind = spec.executor.value if spec.executor and not spec.executor.in_process else "process"
    words = [python, "-m", "tuisup.child", spec.name, spec.target, kind]
    words += [str(int(spec.stop_signal)), "3", str(root)]
    return ("/bin/sh", "-c", f"exec {shlex.join(words)} 3>/dev/null")


def container_argv(spec: ServiceSpec) -> tuple[str, ...]:
    """The command a service runs in a container: a Python target's child runs at APP."""
    return child_argv(spec, "python", APP) if spec.target else spec.argv


GroupRule = tuple[str, Callable[[GroupSpec], bool] | None]
"""Why a written key of a group is lost, and when (None: whatever its value)."""


def group_losses(source: Source, target: str, rules: Mapping[str, GroupRule]) -> list[Loss]:
    """A loss for each written key of each `[groups.NAME]` that `rules` says is lost."""
    return [
        Loss(name, key, target, rules[key][0], section="group")
        for name, table in source.groups.items()
        for key in table
        if key in rules and ((when := rules[key][1]) is None or when(source.manifest.groups[name]))
    ]


def _restarts_together(group: GroupSpec) -> bool:
    return group.strategy is not GroupStrategy.ONE_FOR_ONE


BUDGET = "each service counts its own restarts, not the group's"
GROUP_KEYS: dict[str, GroupRule] = {
    "services": ("its members are not started, stopped or restarted together", None),
    "strategy": ("a member that fails restarts alone", _restarts_together),
    "max_restarts": (BUDGET, None),
    "restart_window": (BUDGET, None),
    "on_failure": ("nothing happens to the others when the group's budget is spent", None),
}
"""Why each key of a group is lost where a target has no groups at all."""


def in_order(source: Source, found: list[Loss]) -> list[Loss]:
    """The losses of `[tuisup]` first, then each service's in the manifest's order, then groups'."""
    order = {table.name: index for index, table in enumerate(source.declared)}
    last = len(order)

    def place(loss: Loss) -> int:
        if loss.service is None:
            return -1
        return last if loss.section == "group" else order[loss.service]

    return sorted(found, key=place)


def targets_note(source: Source, where: str, among: list[str] | None = None) -> list[str]:
    """Comment lines saying that Python targets need tuisup installed `where` (or none).

    Args:
        source: The manifest and the keys it writes.
        where: Where tuisup must be installed, as the end of a sentence.
        among: Only these services (default: all).
    """
    names = [
        s.name
        for s in (table.spec for table in source.declared)
        if s.target is not None and (among is None or s.name in among)
    ]
    if not names:
        return []
    return [
        f"{', '.join(names)}: Python targets run as `python -m tuisup.child`,",
        f"which needs tuisup installed {where}.",
    ]


def container_cwd(
    spec: ServiceSpec, source: Source, found: list[Loss], target: str
) -> PurePosixPath:
    """A service's folder in a container: its place under the project mounted at APP.

    A folder outside the project is not in the container: APP, and a warning.
    """
    try:
        return APP / spec.cwd.relative_to(source.manifest.root).as_posix()
    except ValueError:
        why = f"{spec.cwd} is outside the project folder, which is all the container has"
        found.append(Loss(spec.name, "cwd", target, why))
        return APP
