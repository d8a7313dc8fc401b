"""Provides the systemd export: a unit per service, and a target that wants them all.

The units run on the machine that exports them (as `honcho export` and `foreman export`
do): programs named without a path are found on the PATH export runs with, and paths
stay absolute. Each unit is `PartOf=` the target, so stopping the target stops them all;
`KillMode=control-group` stops every process a service started (the bug that kept
foreman's and honcho's units from stopping children).
"""

from __future__ import annotations

import getpass
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tuisup.export.common import (
    GROUP_KEYS,
    Export,
    GroupRule,
    Loss,
    Options,
    Rule,
    Source,
    child_argv,
    group_losses,
    in_order,
    losses,
    targets_note,
    tuisup_env,
    wait_source,
    written_env,
)
from tuisup.export.tables import Table
from tuisup.manifest import checks
from tuisup.manifest.locator import Locator
from tuisup.manifest.problems import INVALID, Checker
from tuisup.manifest.replicas import PLACES, REPLICA, filled
from tuisup.spec import BackoffKind, Condition, GroupSpec, HealthKind, RestartPolicy, ServiceSpec

TARGET = "systemd"
STEPS_SINCE = 254
"""The first systemd with RestartSteps= and RestartMaxDelaySec=."""
RULES: dict[str, Rule] = {
    "start_timeout": ("a start is the program's exec: there is no import deadline", None),
    "restart_on_unhealthy": ("systemd does not watch a service's health", None),
}
"""What systemd cannot say, beyond what only tuisup does (more depends on the version)."""
_BARE = re.compile(r"[A-Za-z0-9_@+=:,./-]+")
_MARKS = {"replica": "TUISUPxREPLICAx", "port": "TUISUPxPORTx"}
"""What stands for `{replica}` and `{port}` in a template's command until it is written."""
GROUP_RULES: dict[str, GroupRule] = {
    **GROUP_KEYS,
    "services": ("", lambda group: False),  # each member is PartOf= the group's target
    "strategy": (
        "a member that fails restarts alone (restarting the group's target restarts them all)",
        GROUP_KEYS["strategy"][1],
    ),
}
"""What systemd cannot say of a group: its members share a target, nothing more."""


def export(source: Source, options: Options) -> Export:
    """Write a unit per service and a target for `source`.

    Args:
        source: The manifest and the keys it writes.
        options: `user` for user units; `systemd_version` decides the backoff keys.
    """
    project = unit_prefix(source)
    version = options.systemd_version
    found = losses(source, TARGET, {**RULES, **_version_rules(version)})
    found += group_losses(source, TARGET, GROUP_RULES)
    files: dict[str, str] = {}
    for table in source.declared:
        if table.replicas is None:
            unit = _unit(source, table, project, options, found)
            files[f"{project}-{table.name}.service"] = unit
        else:  # a template, and what its instances do not share
            files[f"{project}-{table.name}@.service"] = _unit(
                source, table, project, options, found
            )
            files |= _drop_ins(source, table, project)
    for group in source.manifest.groups.values():
        files[f"{project}-{group.name}.target"] = _group_target(source, group, project)
    files[f"{project}.target"] = _target(source, project, options.user)
    found = in_order(source, found)
    together = "".join(f"# ==> {name} <==\n{text}\n" for name, text in files.items())
    return Export(files, found, together)


def unit_prefix(source: Source) -> str:
    """The units' common name: the project folder's, in the letters a unit name allows."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", source.manifest.root.name).strip("-.")
    return name or "tuisup"


def local_version() -> int | None:
    """The version of this machine's systemd, or None where it has none."""
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return None
    try:
        done = subprocess.run([systemctl, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"systemd (\d+)", done.stdout)
    return int(match.group(1)) if match else None


def _version_rules(version: int | None) -> dict[str, Rule]:
    growing = (BackoffKind.EXPONENTIAL, BackoffKind.LINEAR)
    if version is not None and version < STEPS_SINCE:
        why = f"systemd {version} waits RestartSec= every time (RestartSteps= came in 254)"
        return {
            "backoff": (why, lambda s: s.backoff in growing),
            "backoff_max": (why, lambda s: s.backoff in growing),
        }
    why = "systemd's delays grow exponentially (RestartSteps=), not linearly"
    return {"backoff": (why, lambda s: s.backoff is BackoffKind.LINEAR)}


def units(source: Source, project: str, name: str) -> list[str]:
    """The units a declared name stands for: its own, or each replica's instance."""
    table = source.table(name)
    if table.replicas is None:
        return [f"{project}-{name}.service"]
    return [f"{project}-{name}@{i}.service" for i in range(table.replicas)]


def _unit(source: Source, table: Table, project: str, options: Options, found: list[Loss]) -> str:
    spec = table.spec
    waits = set(source.dependents(spec.name).values())
    # A job that a dependent waits to see completed: it is started when it has exited.
    oneshot = Condition.COMPLETED.value in waits
    which = spec.name if table.replicas is None else f"{spec.name} replica %i"
    unit = [f"Description={which}, a service of {project} (tuisup)"]
    group = f" {project}-{spec.group.name}.target" if spec.group is not None else ""
    unit.append(f"PartOf={project}.target{group}")
    needs = " ".join(u for name in spec.depends_on for u in units(source, project, name))
    if needs:
        unit += [f"After={needs}", f"Requires={needs}"]
    unit += [f"StartLimitIntervalSec={_time(spec.restart_window)}"]
    unit += [f"StartLimitBurst={spec.max_restarts + 1}"]
    service = ["Type=oneshot", "RemainAfterExit=yes"] if oneshot else ["Type=simple"]
    service.append(f"ExecStart={_command(_argv(source, table))}")
    health = _health_wait(spec, Condition.HEALTHY.value in waits, found)
    if health and not _own_check(source, table):
        service.append(f"ExecStartPost={_command(health)}")
    service.append(f"WorkingDirectory={_path(spec.cwd)}")
    env = _env(source, table)
    service += [f"Environment={_unmarked(_quote(f'{k}={v}', dollars=False))}" for k, v in env]
    if spec.env_file is not None:
        service.append(f"EnvironmentFile={_path(spec.env_file)}")
    if not options.user:
        service.append(f"User={getpass.getuser()}")
    service += _restart(spec, options.systemd_version)
    if codes := sorted(spec.success_exit_codes - {0}):
        service.append(f"SuccessExitStatus={' '.join(map(str, codes))}")
    service += ["KillMode=control-group", f"KillSignal={spec.stop_signal.name}"]
    service.append(f"TimeoutStopSec={_time(spec.stop_timeout)}")
    note = ""
    if spec.target is not None:
        note = "".join(
            f"# {line}\n" for line in targets_note(source, "for this Python", [spec.name])
        )
    return f"{note}[Unit]\n{_lines(unit)}\n[Service]\n{_lines(service)}"


def _marked(source: Source, table: Table) -> tuple[str, ...]:
    """A replicated table's command, with markers that `_command` writes as `%i` and `${PORT}`.

    Each replica's own port comes from its drop-in.
    """
    marked = filled(source.written(table.name)["command"], _MARKS)
    ck = Checker(str(source.manifest.path), source.manifest.root, Locator(""))
    made = checks.command(ck, ("command",), marked, table.spec.shell)
    return table.spec.argv if made is INVALID else made[0]


def _group_target(source: Source, group: GroupSpec, project: str) -> str:
    """A group's target: its members are `PartOf=` it.

    It starts, stops and restarts them together, by hand: a member that fails still
    restarts alone.
    """
    members = " ".join(u for name in group.services for u in units(source, project, name))
    unit = [f"Description=Group {group.name} of {project} (tuisup)"]
    if members:
        unit.append(f"Wants={members}")
    return f"[Unit]\n{_lines(unit)}"


def _target(source: Source, project: str, user: bool) -> str:
    """The target: it wants every service that starts with the host, and each group."""
    wanted = [
        u
        for table in source.declared
        if table.spec.autostart
        for u in units(source, project, table.name)
    ]
    wanted += [f"{project}-{name}.target" for name in source.manifest.groups]
    unit = [f"Description=The services of {project} (tuisup)"]
    if wanted:
        unit.append("Wants=" + " ".join(wanted))
    install = "default.target" if user else "multi-user.target"
    return f"[Unit]\n{_lines(unit)}\n[Install]\nWantedBy={install}\n"


def _own_check(source: Source, table: Table) -> bool:
    """Whether each instance of a replicated table checks its health its own way.

    The check waits in each instance's drop-in then: its words are filled in the spec,
    not written with `%i`.
    """
    check = source.written(table.name).get("healthcheck")
    return table.replicas is not None and PLACES.search(repr(check)) is not None


def _env(source: Source, table: Table) -> list[tuple[str, str]]:
    """The variables every instance shares: `{replica}` as `%i`, what needs `{port}` left out."""
    spec = table.spec
    given = tuisup_env(source, spec)
    if table.replicas is None:
        return list({**given, **written_env(source, spec)}.items())
    given.pop("PORT", None)  # the drop-ins set each instance's
    if REPLICA in given:
        given[REPLICA] = _MARKS["replica"]
    shared = {
        k: PLACES.sub(_MARKS["replica"], str(v))
        for k, v in source.written(spec.name).get("env", {}).items()
        if "{port}" not in str(v)
    }
    return list({**given, **shared}.items())


def _drop_ins(source: Source, table: Table, project: str) -> dict[str, str]:
    """Each instance's own port, the variables that use it, and its own health wait."""
    files = {}
    written = source.written(table.name).get("env", {})
    waited = Condition.HEALTHY.value in source.dependents(table.name).values()
    own = [k for k, v in written.items() if "{port}" in str(v)]
    own_check = _own_check(source, table)
    for spec in table.instances:
        lines = []
        if "PORT" in (given := tuisup_env(source, spec)):
            lines.append(f"Environment=PORT={given['PORT']}")
        lines += [f"Environment={_quote(f'{k}={spec.env[k]}', dollars=False)}" for k in own]
        if own_check and (wait := _health_wait(spec, waited, [])):
            lines.append(f"ExecStartPost={_command(wait)}")
        if lines:
            name = f"{project}-{table.name}@{spec.replica}.service.d/instance.conf"
            files[name] = f"[Service]\n{_lines(lines)}"
    return files


def _argv(source: Source, table: Table) -> tuple[str, ...]:
    """The command, its program found on this PATH (systemd's own PATH is short).

    A target's child imports from the manifest's folder, as under tuisup. A replicated
    table's `{replica}` is the instance (`%i`), and its `{port}` the instance's `PORT`.
    """
    spec = table.spec
    if spec.target is not None:
        return child_argv(spec, sys.executable, source.manifest.root)
    argv = spec.argv if table.replicas is None else _marked(source, table)
    program, *rest = argv
    path = spec.env.get("PATH", os.environ.get("PATH"))
    if "/" not in program and (found := shutil.which(program, path=path)) is not None:
        program = os.path.abspath(found)
    return (program, *rest)


def _health_wait(spec: ServiceSpec, waited: bool, found: list[Loss]) -> tuple[str, ...]:
    """What ExecStartPost= runs so that dependents wait for the health check to pass."""
    check = spec.healthcheck
    if check is None:
        return ()
    if not waited:
        found.append(Loss(spec.name, "healthcheck", TARGET, "systemd does not check health"))
        return ()
    why = "checked only until it first passes, which is what its dependents wait for"
    found.append(Loss(spec.name, "healthcheck", TARGET, why))
    if check.kind is HealthKind.COMMAND:
        probe = shlex.join(check.argv)
        script = f"until {probe}; do sleep {check.interval:g}; done"
        return ("/bin/sh", "-c", script)
    return (sys.executable, "-c", wait_source(check, every=check.interval))


def _restart(spec: ServiceSpec, version: int | None) -> list[str]:
    policy = {
        RestartPolicy.ALWAYS: "always",
        RestartPolicy.ON_FAILURE: "on-failure",
        RestartPolicy.NEVER: "no",
    }[spec.restart]
    lines = [f"Restart={policy}"]
    first = 0.0 if spec.backoff is BackoffKind.IMMEDIATE else spec.backoff_delay
    lines.append(f"RestartSec={_time(first)}")
    steps_known = version is None or version >= STEPS_SINCE
    growing = spec.backoff in (BackoffKind.EXPONENTIAL, BackoffKind.LINEAR)
    if steps_known and growing and 0 < first < spec.backoff_max:
        steps = math.ceil(math.log2(spec.backoff_max / first))
        lines += [f"RestartSteps={steps}", f"RestartMaxDelaySec={_time(spec.backoff_max)}"]
    return lines


def _time(value: float) -> str:
    """A systemd time span: seconds, or milliseconds for a fraction."""
    return f"{value:g}" if value == int(value) else f"{round(value * 1000)}ms"


def _command(argv: Sequence[str]) -> str:
    """A command line as systemd reads one: each word quoted where it needs it."""
    return _unmarked(" ".join(_quote(word) for word in argv))


def _unmarked(text: str) -> str:
    """Quoted text with the markers of `{replica}` and `{port}` made `%i` and `${PORT}`."""
    return text.replace(_MARKS["replica"], "%i").replace(_MARKS["port"], "${PORT}")


def _quote(word: str, *, dollars: bool = True) -> str:
    """One word for a unit file: `%` is a specifier, and (in commands) `$` a variable."""
    if _BARE.fullmatch(word):
        return word
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    escaped = escaped.replace("\n", "\\n").replace("\t", "\\t")
    if dollars:
        escaped = escaped.replace("$", "$$")
    return f'"{escaped}"'


def _path(path: Path) -> str:
    """A path setting: the rest of the line as it is (quotes would be part of it), `%` doubled."""
    return str(path).replace("%", "%%")


def _lines(lines: list[str]) -> str:
    return "".join(f"{line}\n" for line in lines)
