"""`tuisup export k8s`: objects that the Kubernetes schemas take strictly, every loss said."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.export.conftest import DEMO, REPO, tuisup, validate_k8s

PREFIX = "tuisup export: "
BACKOFF = "the kubelet waits 10 s, doubled up to 5 min, between restarts"
WATCH = "files that change do not restart it"
HOOKS = "hooks run only under tuisup"
OWN = "runs in tuisup's process; here it is a process of its own"


def export(manifest: Path, *args: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Export to stdout; return the objects and the warning lines."""
    done = tuisup("-f", str(manifest), "export", "k8s", *args)
    assert done.returncode == 0, done.stderr
    objects = [o for o in yaml.safe_load_all(done.stdout) if o is not None]
    return objects, [line.removeprefix(PREFIX) for line in done.stderr.splitlines()]


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def test_the_demo_exports_to_one_valid_file_per_object(tmp_path: Path) -> None:
    shutil.copy(DEMO, tmp_path / "services.toml")
    shutil.copytree(REPO / "demo", tmp_path / "demo")
    out = tmp_path / "k8s"
    done = tuisup("-f", str(tmp_path / "services.toml"), "export", "k8s", "-o", str(out))
    assert done.returncode == 0, done.stderr
    names = sorted(path.name for path in out.iterdir())
    assert "job-migrate.yaml" in names and "deployment-api.yaml" in names
    assert "service-db.yaml" in names  # db's port is known from its tcp check
    # echo's two replicas are one Deployment behind one Service; every service that runs as a
    # process has a ConfigMap, if only for TUISUP_PORT_ECHO.
    assert {"deployment-echo.yaml", "service-echo.yaml", "deployment-warden.yaml"} <= set(names)
    assert sorted(n for n in names if n.startswith("configmap-")) == [
        f"configmap-{name}-env.yaml"
        for name in ("alerts", "api", "chatty", "crunch", "db", "echo", "flaky", "greeter")
        + ("migrate", "web")
    ]
    assert len(names) == 29
    validate_k8s(*(out / name for name in names))


def test_every_key_exports_to_valid_objects(every_key: Path, tmp_path: Path) -> None:
    objects, _ = export(every_key)
    out = tmp_path / "all.yaml"
    out.write_text(yaml.safe_dump_all(objects))
    validate_k8s(out)
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert kinds == [
        *(("ConfigMap", "db-env"), ("Secret", "db-env"), ("Deployment", "db"), ("Service", "db")),
        *(("Job", "migrate"), ("Deployment", "web"), ("Service", "web")),
        *(("Deployment", "worker"), ("Deployment", "tick")),
        *(("ConfigMap", "stream-env"), ("Deployment", "stream"), ("Deployment", "auto")),
        ("Deployment", "watcher"),
        *(("ServiceAccount", "tuisup-waiter"), ("Role", "tuisup-waiter")),
        ("RoleBinding", "tuisup-waiter"),
    ]


def test_every_key_maps_to_its_kubernetes_field(every_key: Path) -> None:
    objects, _ = export(every_key)
    # The env file's secret-looking names go to a Secret, the rest with `env` to a ConfigMap.
    assert find(objects, "Secret", "db-env")["stringData"] == {"SECRET_KEY": "s3cr3t"}
    assert find(objects, "ConfigMap", "db-env")["data"] == {
        "DATABASE_URL": "postgres://db/shop",
        "DEBUG": "1",
        "DB_NAME": "shop",
        "GREETING": "cost: $5 or 100%",
    }
    db = find(objects, "Deployment", "db")["spec"]["template"]["spec"]
    assert db["terminationGracePeriodSeconds"] == 8  # 7.5 s, rounded up
    (container,) = db["containers"]
    assert container["workingDir"] == "/app/app"
    assert container["image"] == "python:3.13-slim"
    assert container["readinessProbe"] == {
        "tcpSocket": {"port": 5432},
        "periodSeconds": 2,
        "timeoutSeconds": 1,
        "failureThreshold": 5,
        "initialDelaySeconds": 3,
    }
    assert "livenessProbe" not in container
    assert find(objects, "Service", "db")["spec"]["ports"] == [{"port": 5432, "targetPort": 5432}]
    migrate = find(objects, "Job", "migrate")["spec"]
    assert migrate["backoffLimit"] == 5
    assert migrate["template"]["spec"]["restartPolicy"] == "Never"
    web = find(objects, "Deployment", "web")["spec"]["template"]["spec"]
    assert [c["name"] for c in web["initContainers"]] == ["wait-for-db", "wait-for-migrate"]
    assert web["serviceAccountName"] == "tuisup-waiter"
    assert web["containers"][0]["livenessProbe"]["httpGet"] == {
        "path": "/health",
        "port": 8000,
        "scheme": "HTTP",
    }
    worker = find(objects, "Deployment", "worker")["spec"]
    assert worker["replicas"] == 0  # autostart = false
    assert worker["template"]["spec"]["containers"][0]["readinessProbe"]["exec"] == {
        "command": ["/bin/sh", "-c", "celery -A app inspect ping"]
    }


def test_an_init_container_waits_until_its_dependency_answers(every_key: Path) -> None:
    """The wait for db runs for real: it returns once a listener opens (db's Service here)."""
    objects, _ = export(every_key)
    web = find(objects, "Deployment", "web")["spec"]["template"]["spec"]
    source = web["initContainers"][0]["command"][2]
    assert "('db', 5432)" in source
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        mine = source.replace("('db', 5432)", f"('127.0.0.1', {port})")
        done = subprocess.run(["python", "-c", mine], capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr


def test_every_key_says_each_kubernetes_loss_exactly(every_key: Path) -> None:
    _, losses = export(every_key)
    assert losses == [
        "[tuisup]: key log_dir has no equivalent in k8s: the target keeps the output",
        "[tuisup]: key shutdown_timeout has no equivalent in k8s: "
        "each service's own stop timeout applies",
        "[tuisup]: key log_lines has no equivalent in k8s: the target keeps the output",
        "[tuisup]: key reload has no equivalent in k8s: edit and export again",
        "[tuisup]: key socket has no equivalent in k8s: there is no running tuisup to control",
        "[tuisup]: key log_max_bytes has no equivalent in k8s: the target keeps the output",
        "[tuisup]: key log_backups has no equivalent in k8s: the target keeps the output",
        "[tuisup]: key log_timestamps has no equivalent in k8s: the target keeps the output",
        "[tuisup]: key log_format has no equivalent in k8s: the target keeps the output",
        "[tuisup]: key metrics has no equivalent in k8s: tuisup's metrics exist only under tuisup",
        f"service db: key backoff has no equivalent in k8s: {BACKOFF}",
        f"service db: key backoff_delay has no equivalent in k8s: {BACKOFF}",
        f"service db: key backoff_max has no equivalent in k8s: {BACKOFF}",
        "service db: key jitter has no equivalent in k8s: restart delays are not spread at random",
        "service db: key max_restarts has no equivalent in k8s: a Deployment restarts without "
        "limit",
        "service db: key restart_window has no equivalent in k8s: "
        "Kubernetes counts restarts without a window",
        "service db: key stop_signal has no equivalent in k8s: "
        "Kubernetes stops a container with SIGTERM (or its image's STOPSIGNAL)",
        "service db: key start_timeout has no equivalent in k8s: a start has no deadline",
        "service db: key restart_dependents has no equivalent in k8s: "
        "its dependents are not restarted when it starts again",
        "service migrate: key success_exit_codes has no equivalent in k8s: "
        "any exit code but 0 is a failure",
        f"service web: key backoff has no equivalent in k8s: {BACKOFF}",
        f"service web: key watch has no equivalent in k8s: {WATCH}",
        f"service web: key watch_ignore has no equivalent in k8s: {WATCH}",
        f"service web: key watch_debounce has no equivalent in k8s: {WATCH}",
        f"service web: key hook_timeout has no equivalent in k8s: {HOOKS}",
        f"service web: key on.started has no equivalent in k8s: {HOOKS}",
        f"service web: key on.failed has no equivalent in k8s: {HOOKS}",
        "service web: key healthcheck.status has no equivalent in k8s: "
        "a Kubernetes probe passes on any status from 200 to 399",
        f"service worker: key backoff has no equivalent in k8s: {BACKOFF}",
        f"service worker: key backoff_delay has no equivalent in k8s: {BACKOFF}",
        f"service tick: key backoff has no equivalent in k8s: {BACKOFF}",
        f'service tick: key executor has no equivalent in k8s: executor "thread" {OWN}',
        f"service auto: key executor has no equivalent in k8s: with no executor, it {OWN}",
        "service watcher: key listen has no equivalent in k8s: "
        "tuisup's events exist only under tuisup: its stdin is empty",
        "service watcher: key listen_buffer has no equivalent in k8s: "
        "tuisup's events exist only under tuisup",
        "service watcher: key log_format has no equivalent in k8s: the target keeps the output",
    ]


def test_a_dependency_without_a_port_cannot_be_waited_for_and_says_so(tmp_path: Path) -> None:
    manifest = tmp_path / "services.toml"
    manifest.write_text(
        '[services.queue]\ncommand = "python -m queue"\n'
        '[services.worker]\ncommand = "python -m worker"\ndepends_on = ["queue"]\n'
    )
    objects, losses = export(manifest)
    assert losses == [
        "service worker: key depends_on.queue has no equivalent in k8s: "
        "queue has no port to wait for: Kubernetes starts both at once"
    ]
    assert "initContainers" not in find(objects, "Deployment", "worker")["spec"]["template"]["spec"]


def test_strict_fails_on_a_kubernetes_loss(every_key: Path, tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    done = tuisup("-f", str(every_key), "export", "k8s", "--strict", "-o", str(out))
    assert done.returncode == 1
    assert not out.exists()
