"""Provides the Kubernetes export: a Deployment or Job per service, and what they need.

A service that runs once (`restart = "never"`, or one that a dependent waits to see
`completed`) is a Job; every other one a Deployment. Kubernetes has no `depends_on`: a
dependent gets an init container per dependency that waits for it, through its Service
(a port known from its health check) or, for a Job, through the API (which needs the
ServiceAccount, Role and RoleBinding exported with it).
"""

from __future__ import annotations

import re
from typing import Any

from tuisup.export.common import (
    APP,
    GROUP_KEYS,
    Export,
    Loss,
    Options,
    Rule,
    Source,
    container_argv,
    container_cwd,
    dump_yaml,
    group_losses,
    in_order,
    losses,
    placeholders,
    seconds,
    targets_note,
    tuisup_env,
    wait_source,
    written_env,
)
from tuisup.export.tables import Table
from tuisup.manifest.replicas import REPLICA
from tuisup.spec import Condition, HealthCheck, HealthKind, RestartPolicy, ServiceSpec

TARGET = "k8s"
_BACKOFF = "the kubelet waits 10 s, doubled up to 5 min, between restarts"
RULES: dict[str, Rule] = {
    "backoff": (_BACKOFF, None),
    "backoff_delay": (_BACKOFF, None),
    "backoff_max": (_BACKOFF, None),
    "max_restarts": ("a Deployment restarts without limit", lambda s: not _runs_once(s)),
    "restart_window": ("Kubernetes counts restarts without a window", None),
    "success_exit_codes": (
        "any exit code but 0 is a failure",
        lambda s: s.success_exit_codes != frozenset({0}),
    ),
    "stop_signal": (
        "Kubernetes stops a container with SIGTERM (or its image's STOPSIGNAL)",
        lambda s: s.stop_signal.name != "SIGTERM",
    ),
    "start_timeout": ("a start has no deadline", None),
}
"""What Kubernetes cannot say, beyond what only tuisup does."""
SECRET = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|KEY|CREDENTIAL|PRIVATE|AUTH", re.IGNORECASE)
"""The names of env-file variables that go to a Secret, not a ConfigMap."""
_JOB_DONE = """\
import json, ssl, time, urllib.request
sa = '/var/run/secrets/kubernetes.io/serviceaccount/'
namespace = open(sa + 'namespace').read()
url = f'https://kubernetes.default.svc/apis/batch/v1/namespaces/{namespace}/jobs/%s'
context = ssl.create_default_context(cafile=sa + 'ca.crt')
while True:
    request = urllib.request.Request(url)
    request.add_header('Authorization', 'Bearer ' + open(sa + 'token').read())
    try:
        with urllib.request.urlopen(request, context=context) as answer:
            job = json.load(answer)
        if job.get('status', {}).get('succeeded', 0) >= (job['spec'].get('completions') or 1):
            break
    except OSError:
        pass
    time.sleep(2)"""
"""Python that returns once a Job has succeeded: each of its completions (one a replica),
and the API call needs `_waiter`'s Role."""


def export(source: Source, options: Options) -> Export:
    """Write the objects for `source`, one file each.

    Args:
        source: The manifest and the keys it writes.
        options: Unused: Kubernetes objects name no local path.
    """
    found = losses(source, TARGET, RULES)
    project = name_of(source.manifest.root.name) or "tuisup"
    objects: list[dict[str, Any]] = []
    for table in source.declared:
        objects += _service_objects(source, table, project, found)
    if any(Condition.COMPLETED in t.spec.depends_on.values() for t in source.declared):
        objects += _waiter(project)
    found += group_losses(source, TARGET, GROUP_KEYS)
    header = [
        f"Made by `tuisup export k8s` from {source.manifest.path.name}: edit that and export.",
        f"Image {source.image} must hold the project folder at {APP}",
        "(set [tuisup.export] image in the manifest to the image you build).",
        *targets_note(source, "in the image"),
    ]
    comment = "".join(f"# {line}\n" for line in header)
    files = {f"{o['kind'].lower()}-{o['metadata']['name']}.yaml": dump_yaml(o) for o in objects}
    together = comment + "---\n".join(files.values())
    return Export(
        {name: comment + text for name, text in files.items()}, in_order(source, found), together
    )


def name_of(name: str) -> str:
    """A name Kubernetes takes (RFC 1123: lower case, digits and `-`)."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63]


def _runs_once(spec: ServiceSpec) -> bool:
    return spec.restart is RestartPolicy.NEVER


def _service_objects(
    source: Source, table: Table, project: str, found: list[Loss]
) -> list[dict[str, Any]]:
    spec = table.spec
    name = name_of(spec.name)
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": project}
    objects, env_from = _env_objects(source, table, name, labels)
    pod = _pod(source, spec, env_from, found)
    job = _runs_once(spec) or Condition.COMPLETED.value in source.dependents(spec.name).values()
    template = {"metadata": {"labels": labels}, "spec": pod}
    if table.alike and "{replica}" in placeholders(source, spec.name):
        why = f"its {table.replicas} pods are alike: each gets replica 0's {{replica}} (0)"
        found.append(Loss(spec.name, "replicas", TARGET, why))
    count = 1 if table.replicas is None else table.replicas
    if job:
        pod["restartPolicy"] = "Never" if _runs_once(spec) else "OnFailure"
        job_spec: dict[str, Any] = {"backoffLimit": spec.max_restarts, "template": template}
        if count != 1:  # each replica one run: N pods that must each succeed
            job_spec |= {"completions": count, "parallelism": count}
        if not spec.autostart:
            job_spec["suspend"] = True
        objects.append(_object("batch/v1", "Job", name, labels, job_spec))
    else:
        if spec.restart is RestartPolicy.ON_FAILURE and "restart" in source.written(spec.name):
            why = "a Deployment restarts a container that exited cleanly too"
            found.append(Loss(spec.name, "restart", TARGET, why))
        deployment = {
            "replicas": count if spec.autostart else 0,
            "selector": {"matchLabels": labels},
            "template": template,
        }
        objects.append(_object("apps/v1", "Deployment", name, labels, deployment))
    if (known := port_of(spec)) is not None:
        service = {"selector": labels, "ports": [{"port": known, "targetPort": known}]}
        objects.append(_object("v1", "Service", name, labels, service))
    return objects


def port_of(spec: ServiceSpec) -> int | None:
    """The port a service listens on, or None where nothing says.

    Its `port` (every pod takes the first replica's, each at its own address), or else
    its tcp or http check's.
    """
    if spec.port is not None:
        return spec.port
    if spec.healthcheck is not None and spec.healthcheck.kind is not HealthKind.COMMAND:
        return spec.healthcheck.port
    return None


def _object(
    api: str, kind: str, name: str, labels: dict[str, str], spec: dict[str, Any]
) -> dict[str, Any]:
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    }


def _env_objects(
    source: Source, table: Table, name: str, labels: dict[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ConfigMap and Secret of a service's variables, and the envFrom that reads them."""
    spec = table.spec
    written = written_env(source, spec)
    given = tuisup_env(source, spec)
    from_file = {k: v for k, v in spec.env.items() if k not in written and k not in given}
    if table.alike:  # the pods cannot be told apart: none gets an index
        given.pop(REPLICA, None)
    plain = {**given, **{k: v for k, v in from_file.items() if not SECRET.search(k)}, **written}
    secret = {k: v for k, v in from_file.items() if SECRET.search(k)}
    objects: list[dict[str, Any]] = []
    env_from: list[dict[str, Any]] = []
    metadata = {"name": f"{name}-env", "labels": labels}
    if plain:
        objects.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": plain}
        )
        env_from.append({"configMapRef": {"name": f"{name}-env"}})
    if secret:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": metadata,
                "type": "Opaque",
                "stringData": secret,
            }
        )
        env_from.append({"secretRef": {"name": f"{name}-env"}})
    return objects, env_from


def _pod(
    source: Source, spec: ServiceSpec, env_from: list[dict[str, Any]], found: list[Loss]
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name_of(spec.name),
        "image": source.image,
        "command": list(container_argv(spec)),
        "workingDir": str(container_cwd(spec, source, found, TARGET)),
    }
    if env_from:
        container["envFrom"] = env_from
    check = spec.healthcheck
    if check is not None:
        container["readinessProbe"] = _probe(spec, check, found)
        if spec.restart_on_unhealthy:
            container["livenessProbe"] = _probe(spec, check, [])
    pod: dict[str, Any] = {"terminationGracePeriodSeconds": seconds(spec.stop_timeout)}
    waits = [w for dep, c in spec.depends_on.items() if (w := _wait(source, spec, dep, c, found))]
    if waits:
        pod["initContainers"] = waits
    if any(c is Condition.COMPLETED for c in spec.depends_on.values()):
        pod["serviceAccountName"] = "tuisup-waiter"
    pod["containers"] = [container]
    return pod


def _probe(spec: ServiceSpec, check: HealthCheck, found: list[Loss]) -> dict[str, Any]:
    probe: dict[str, Any]
    if check.kind is HealthKind.COMMAND:
        probe = {"exec": {"command": list(check.argv)}}
    elif check.kind is HealthKind.TCP:
        probe = {"tcpSocket": {"port": check.port}}
    else:
        scheme = "HTTPS" if check.tls else "HTTP"
        probe = {"httpGet": {"path": check.path, "port": check.port, "scheme": scheme}}
        if check.status is not None:
            why = "a Kubernetes probe passes on any status from 200 to 399"
            found.append(Loss(spec.name, "healthcheck.status", TARGET, why))
    probe |= {
        "periodSeconds": seconds(check.interval),
        "timeoutSeconds": seconds(check.timeout),
        "failureThreshold": check.retries,
    }
    if check.start_period:
        probe["initialDelaySeconds"] = seconds(check.start_period)
    return probe


def _wait(
    source: Source, spec: ServiceSpec, dep: str, condition: Condition, found: list[Loss]
) -> dict[str, Any] | None:
    """An init container that waits for `dep`, or None (and a loss) where none can."""
    base = {"name": f"wait-for-{name_of(dep)}", "image": source.image}
    if condition is Condition.COMPLETED:
        return base | {"command": ["python", "-c", _JOB_DONE % name_of(dep)]}
    other = source.table(dep).spec
    check = other.healthcheck
    if check is None or check.kind is HealthKind.COMMAND:
        port = port_of(other)
        if port is None:
            why = f"{dep} has no port to wait for: Kubernetes starts both at once"
            found.append(Loss(spec.name, f"depends_on.{dep}", TARGET, why))
            return None
        # It answers on its port.
        check = HealthCheck(kind=HealthKind.TCP, target=str(port), port=port)
    return base | {"command": ["python", "-c", wait_source(check, host=name_of(dep))]}


def _waiter(project: str) -> list[dict[str, Any]]:
    """What lets init containers read Jobs: a ServiceAccount, a Role and their binding."""
    name = "tuisup-waiter"
    labels = {"app.kubernetes.io/part-of": project}
    metadata = {"name": name, "labels": labels}
    rule = {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"]}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": metadata,
            "rules": [rule],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": metadata,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name}],
        },
    ]
