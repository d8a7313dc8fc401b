"""Provides the Docker Compose export: one compose service per tuisup service.

Each service runs in the configured image with the project folder mounted at /app, so
that commands and paths written for the project work as they do under tuisup.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from tuisup.export.common import (
    APP,
    GROUP_KEYS,
    Export,
    Loss,
    Options,
    Rule,
    Source,
    command_check,
    container_argv,
    container_cwd,
    dump_yaml,
    duration,
    group_losses,
    in_order,
    losses,
    placeholders,
    probe_source,
    targets_note,
    tuisup_env,
    written_env,
)
from tuisup.export.tables import Table
from tuisup.manifest.replicas import REPLICA
from tuisup.spec import Condition, HealthCheck, HealthKind, RestartPolicy, ServiceSpec

TARGET = "compose"
_CONDITIONS = {
    Condition.STARTED: "service_started",
    Condition.HEALTHY: "service_healthy",
    Condition.COMPLETED: "service_completed_successfully",
}
_BACKOFF = "docker waits 100 ms, doubled after each restart up to 1 min"
RULES: dict[str, Rule] = {
    "backoff": (_BACKOFF, None),
    "backoff_delay": (_BACKOFF, None),
    "backoff_max": (_BACKOFF, None),
    "restart_window": ("on-failure:N counts the restarts of the container's whole life", None),
    "max_restarts": (
        'restart = "always" has no limit in compose',
        lambda s: s.restart is RestartPolicy.ALWAYS,
    ),
    "success_exit_codes": (
        "any exit code but 0 is a failure",
        lambda s: s.success_exit_codes != frozenset({0}),
    ),
    "start_timeout": ("a start has no deadline", None),
    "restart_on_unhealthy": (
        "docker does not restart an unhealthy container",
        lambda s: s.restart_on_unhealthy,
    ),
}
"""What compose cannot say, beyond what only tuisup does."""


def export(source: Source, options: Options) -> Export:
    """Write `compose.yaml` for `source`.

    Args:
        source: The manifest and the keys it writes.
        options: The folder the file goes to (compose takes relative paths from there).
    """
    out_dir = options.out_dir
    manifest = source.manifest
    mount = os.path.relpath(manifest.root, out_dir)
    found = losses(source, TARGET, RULES)
    services = {}
    for table in source.declared:
        services[table.name] = _service(source, table, mount, out_dir, found)
    found = in_order(source, found + group_losses(source, TARGET, GROUP_KEYS))
    header = [
        f"Made by `tuisup export compose` from {manifest.path.name}: edit that, and export again.",
        f"The project folder is mounted at {APP} in image {source.image}",
        "(set [tuisup.export] image in the manifest for another), and the services share",
        "the host's network, so that they reach each other at 127.0.0.1 as under tuisup.",
        *targets_note(source, "in the image"),
    ]
    body = dump_yaml({"services": services})
    text = "".join(f"# {line}\n" for line in header) + body
    return Export({"compose.yaml": text}, found, text)


def _service(
    source: Source, table: Table, mount: str, out_dir: Path, found: list[Loss]
) -> dict[str, Any]:
    spec = table.spec
    service: dict[str, Any] = {
        "image": source.image,
        "command": [_escaped(word) for word in container_argv(spec)],
        "working_dir": str(container_cwd(spec, source, found, TARGET)),
        "volumes": [f"{mount}:{APP}"],
        "network_mode": "host",
    }
    given = tuisup_env(source, spec)
    if table.alike:  # the replicas cannot be told apart: none gets an index
        given.pop(REPLICA, None)
    if environment := {**given, **written_env(source, spec)}:
        service["environment"] = {k: _escaped(v) for k, v in environment.items()}
    if spec.env_file is not None:
        service["env_file"] = [os.path.relpath(spec.env_file, out_dir)]
    service["restart"] = _restart(spec)
    if spec.stop_signal is not signal.SIGTERM:  # compose's default, as tuisup's
        service["stop_signal"] = spec.stop_signal.name
    if spec.stop_timeout != 10:  # the same
        service["stop_grace_period"] = duration(spec.stop_timeout)
    if spec.depends_on:
        service["depends_on"] = {
            name: {"condition": _CONDITIONS[condition]}
            for name, condition in spec.depends_on.items()
        }
    if spec.healthcheck is not None:
        service["healthcheck"] = _healthcheck(spec.healthcheck)
    if not spec.autostart:
        service["profiles"] = ["manual"]  # `docker compose up` leaves it, as tuisup does
    if table.replicas is not None:
        service["deploy"] = {"replicas": table.replicas}
        if loss := _alike(source, table):
            found.append(loss)
    return service


def _alike(source: Source, table: Table) -> Loss | None:
    """The loss of a table whose replicas would need values of their own, if any."""
    spec = table.spec
    given = [
        f"{word} ({spec.port if word == '{port}' else 0})"
        for word in placeholders(source, table.name)
    ]
    if spec.port is not None:
        given.append(f"PORT ({spec.port})")
    if not table.alike or not given:
        return None
    why = (
        f"its {table.replicas} replicas all get replica 0's {_joined(given)}: "
        "compose has no per-replica values"
    )
    if spec.port is not None:
        why += f", and on the host's network only one of them can listen on {spec.port}"
    return Loss(table.name, "replicas", TARGET, why)


def _joined(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _restart(spec: ServiceSpec) -> str:
    match spec.restart:
        case RestartPolicy.ALWAYS:
            return "always"
        case RestartPolicy.ON_FAILURE:
            return f"on-failure:{spec.max_restarts}"
        case RestartPolicy.NEVER:
            return "no"


def _healthcheck(check: HealthCheck) -> dict[str, Any]:
    if check.kind is HealthKind.COMMAND:
        shell = command_check(check)
        test = ["CMD-SHELL", *shell] if shell else ["CMD", *check.argv]
    else:
        test = ["CMD", "python", "-c", probe_source(check)]
    table: dict[str, Any] = {
        "test": [_escaped(word) for word in test],
        "interval": duration(check.interval),
        "timeout": duration(check.timeout),
        "retries": check.retries,
    }
    if check.start_period:
        table["start_period"] = duration(check.start_period)
    return table


def _escaped(text: str) -> str:
    """Text that compose's `$` interpolation leaves as it is."""
    return text.replace("$", "$$")
