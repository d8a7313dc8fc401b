"""Exports of replicas, ports and groups: each table once, with its count, every loss said."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.export.conftest import tuisup, validate_compose, validate_k8s, verify_units

PREFIX = "tuisup export: "
REPLICATED = """\
[services.broker]
command = "python -m app.broker --port {port}"
port = 5672

[services.worker]
command = "python -m app.worker --id {replica}"
replicas = 3
depends_on = ["broker"]
env = { NAME = "worker-{replica}", MODE = "fast" }

[services.web]
command = "python -m app.web --port {port}"
replicas = 2
port = 8000
env = { URL = "http://127.0.0.1:{port}/" }
healthcheck = { http = "http://127.0.0.1:{port}/health" }

[services.front]
command = "python -m app.front"
depends_on = { web = "healthy", worker = "started" }

[services.spare]
command = "python -m app.spare"
replicas = 0

[groups.pipeline]
services = ["broker", "worker"]
strategy = "rest_for_one"
max_restarts = 2
restart_window = 10
on_failure = "shutdown"
"""
GROUP_LOSSES = {
    "services": "its members are not started, stopped or restarted together",
    "strategy": "a member that fails restarts alone",
    "max_restarts": "each service counts its own restarts, not the group's",
    "restart_window": "each service counts its own restarts, not the group's",
    "on_failure": "nothing happens to the others when the group's budget is spent",
}


@pytest.fixture
def replicated(tmp_path: Path) -> Path:
    """A project with replicas, ports, a table of no replicas and a group."""
    project = tmp_path / "shop"
    project.mkdir()
    path = project / "services.toml"
    path.write_text(REPLICATED)
    return path


def run(manifest: Path, target: str, *args: str) -> tuple[str, list[str]]:
    done = tuisup("-f", str(manifest), "export", target, *args)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout, [line.removeprefix(PREFIX) for line in done.stderr.splitlines()]


def group_losses(target: str) -> list[str]:
    return [
        f"group pipeline: key {key} has no equivalent in {target}: {why}"
        for key, why in GROUP_LOSSES.items()
    ]


# -- compose ---------------------------------------------------------------------------


def test_a_replicated_table_is_one_compose_service_with_its_replica_count(
    replicated: Path,
) -> None:
    """Before: `worker.0`, `worker.1` ... each a service, and `front` depended on a `web`
    that the file did not have."""
    out = replicated.parent / "compose.yaml"
    run(replicated, "compose", "-o", str(out))
    validate_compose(out)
    services = yaml.safe_load(out.read_text())["services"]
    assert list(services) == ["broker", "worker", "web", "front", "spare"]
    assert [services[n].get("deploy") for n in services] == [
        None,
        {"replicas": 3},
        {"replicas": 2},
        None,
        {"replicas": 0},
    ]
    worker, web = services["worker"], services["web"]
    assert worker["command"] == ["python", "-m", "app.worker", "--id", "0"]
    assert worker["environment"] == {  # no TUISUP_REPLICA: the replicas cannot be told apart
        "TUISUP_PORT_BROKER": "5672",
        "TUISUP_PORT_WEB": "8000",
        "NAME": "worker-0",
        "MODE": "fast",
    }
    assert web["environment"] == {
        "TUISUP_PORT_BROKER": "5672",
        "TUISUP_PORT_WEB": "8000",
        "PORT": "8000",
        "URL": "http://127.0.0.1:8000/",
    }
    assert services["broker"]["environment"]["PORT"] == "5672"
    assert services["front"]["depends_on"] == {
        "web": {"condition": "service_healthy"},
        "worker": {"condition": "service_started"},
    }


def test_compose_says_once_per_table_what_its_replicas_cannot_have(replicated: Path) -> None:
    _, losses = run(replicated, "compose")
    assert losses == [
        "service worker: key replicas has no equivalent in compose: its 3 replicas all get "
        "replica 0's {replica} (0): compose has no per-replica values",
        "service web: key replicas has no equivalent in compose: its 2 replicas all get "
        "replica 0's {port} (8000) and PORT (8000): compose has no per-replica values, "
        "and on the host's network only one of them can listen on 8000",
        *group_losses("compose"),
    ]


def test_replicas_that_use_no_placeholder_export_without_a_warning(tmp_path: Path) -> None:
    manifest = tmp_path / "services.toml"
    manifest.write_text('[services.worker]\ncommand = "python -m worker"\nreplicas = 4\n')
    done = tuisup("-f", str(manifest), "export", "compose", "--strict")
    assert (done.returncode, done.stderr) == (0, "")
    assert yaml.safe_load(done.stdout)["services"]["worker"]["deploy"] == {"replicas": 4}


def test_strict_fails_on_a_group(tmp_path: Path) -> None:
    manifest = tmp_path / "services.toml"
    manifest.write_text(
        '[services.a]\ncommand = "python -m a"\n[services.b]\ncommand = "python -m b"\n'
        '[groups.ab]\nservices = ["a", "b"]\n'
    )
    for target in ("compose", "k8s"):
        done = tuisup("-f", str(manifest), "export", target, "--strict")
        assert done.returncode == 1, target
        assert done.stderr.splitlines()[0] == (
            f"{PREFIX}group ab: key services has no equivalent in {target}: "
            "its members are not started, stopped or restarted together"
        )
    # systemd has the members' target: a one_for_one group loses nothing, one_for_all does.
    done = tuisup("-f", str(manifest), "export", "systemd", "--strict")
    assert (done.returncode, done.stderr) == (0, "")
    manifest.write_text(f'{manifest.read_text()}strategy = "one_for_all"\n')
    done = tuisup("-f", str(manifest), "export", "systemd", "--strict")
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == (
        f"{PREFIX}group ab: key strategy has no equivalent in systemd: a member that fails "
        "restarts alone (restarting the group's target restarts them all)"
    )


# -- Kubernetes ------------------------------------------------------------------------


def objects_of(text: str) -> dict[tuple[str, str], dict[str, Any]]:
    found = [o for o in yaml.safe_load_all(text) if o is not None]
    return {(o["kind"], o["metadata"]["name"]): o for o in found}


def test_a_replicated_table_is_one_deployment_with_replicas_and_a_service(
    replicated: Path, tmp_path: Path
) -> None:
    """Before: a Deployment `worker-0` per replica, and a traceback for `front`, which
    depends on the replicated `web`."""
    text, _ = run(replicated, "k8s")
    out = tmp_path / "all.yaml"
    out.write_text(text)
    validate_k8s(out)
    objects = objects_of(text)
    deployments = {n: o["spec"]["replicas"] for (k, n), o in objects.items() if k == "Deployment"}
    assert deployments == {"broker": 1, "worker": 3, "web": 2, "front": 1, "spare": 0}
    services = {n: o["spec"]["ports"] for (k, n), o in objects.items() if k == "Service"}
    assert services == {  # a `port` is known: every pod listens on it, at its own address
        "broker": [{"port": 5672, "targetPort": 5672}],
        "web": [{"port": 8000, "targetPort": 8000}],
    }
    assert objects["ConfigMap", "worker-env"]["data"] == {
        "TUISUP_PORT_BROKER": "5672",
        "TUISUP_PORT_WEB": "8000",
        "NAME": "worker-0",
        "MODE": "fast",
    }
    assert objects["ConfigMap", "web-env"]["data"]["PORT"] == "8000"
    front = objects["Deployment", "front"]["spec"]["template"]["spec"]
    assert [c["name"] for c in front["initContainers"]] == ["wait-for-web"]
    # worker has no port: nothing to wait for, and a warning says so.
    worker = objects["Deployment", "worker"]["spec"]["template"]["spec"]
    assert [c["name"] for c in worker["initContainers"]] == ["wait-for-broker"]
    assert "('broker', 5672)" in worker["initContainers"][0]["command"][2]


def test_kubernetes_says_which_replicas_cannot_have_their_index(replicated: Path) -> None:
    _, losses = run(replicated, "k8s")
    assert losses == [
        "service worker: key replicas has no equivalent in k8s: "
        "its 3 pods are alike: each gets replica 0's {replica} (0)",
        "service front: key depends_on.worker has no equivalent in k8s: "
        "worker has no port to wait for: Kubernetes starts both at once",
        *group_losses("k8s"),
    ]


def test_a_replicated_job_runs_a_pod_per_replica(tmp_path: Path) -> None:
    manifest = tmp_path / "services.toml"
    manifest.write_text(
        '[services.seed]\ncommand = "python -m seed"\nrestart = "never"\nreplicas = 3\n'
    )
    text, losses = run(manifest, "k8s")
    assert losses == []
    (tmp_path / "job.yaml").write_text(text)
    validate_k8s(tmp_path / "job.yaml")
    job = objects_of(text)["Job", "seed"]["spec"]
    assert (job["completions"], job["parallelism"]) == (3, 3)


# -- systemd ---------------------------------------------------------------------------


def test_a_replicated_table_is_a_template_unit_that_the_target_wants_per_replica(
    replicated: Path, tmp_path: Path
) -> None:
    """Before: a unit per replica (`shop-worker.0.service`) and `Requires=shop-web.service`,
    a unit that did not exist."""
    out = tmp_path / "units"
    run(replicated, "systemd", "-o", str(out))
    assert verify_units(out) == ""
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert names == [
        "shop-broker.service",
        "shop-front.service",
        "shop-pipeline.target",
        "shop-spare@.service",
        "shop-web@.service",
        "shop-web@0.service.d/instance.conf",
        "shop-web@1.service.d/instance.conf",
        "shop-worker@.service",
        "shop.target",
    ]
    worker = (out / "shop-worker@.service").read_text().splitlines()
    assert "Description=worker replica %i, a service of shop (tuisup)" in worker
    assert "PartOf=shop.target shop-pipeline.target" in worker
    assert any(line.endswith("python -m app.worker --id %i") for line in worker)
    assert "Environment=TUISUP_REPLICA=%i" in worker
    assert "Environment=NAME=worker-%i" in worker
    web = (out / "shop-web@.service").read_text().splitlines()
    assert any(line.endswith("python -m app.web --port ${PORT}") for line in web)
    assert not [line for line in web if "PORT=" in line or "URL=" in line or "Post" in line]
    one = (out / "shop-web@1.service.d/instance.conf").read_text().splitlines()
    assert one[:3] == [
        "[Service]",
        "Environment=PORT=8001",
        "Environment=URL=http://127.0.0.1:8001/",
    ]
    assert one[3].startswith("ExecStartPost=") and "8001" in one[3]  # front waits: healthy
    front = (out / "shop-front.service").read_text().splitlines()
    needs = "shop-web@0.service shop-web@1.service " + " ".join(
        f"shop-worker@{i}.service" for i in range(3)
    )
    assert f"Requires={needs}" in front and f"After={needs}" in front
    target = (out / "shop.target").read_text().splitlines()
    assert target[2] == (
        "Wants=shop-broker.service shop-worker@0.service shop-worker@1.service "
        "shop-worker@2.service shop-web@0.service shop-web@1.service shop-front.service "
        "shop-pipeline.target"
    )
    group = (out / "shop-pipeline.target").read_text().splitlines()
    assert group[2] == (
        "Wants=shop-broker.service shop-worker@0.service shop-worker@1.service "
        "shop-worker@2.service"
    )


def test_systemd_maps_a_groups_members_and_warns_for_the_rest(replicated: Path) -> None:
    _, losses = run(replicated, "systemd")
    assert [line for line in losses if line.startswith("group")] == [
        "group pipeline: key strategy has no equivalent in systemd: a member that fails "
        "restarts alone (restarting the group's target restarts them all)",
        *group_losses("systemd")[2:],
    ]


def test_a_template_instance_runs_its_own_command_when_started_by_hand(
    replicated: Path, tmp_path: Path
) -> None:
    """What systemd runs for `shop-web@1.service`: `%i` and `${PORT}` filled as it fills
    them, checked against the instance tuisup itself would run."""
    from tuisup.export.common import Options, read_source
    from tuisup.export.systemd import export
    from tuisup.manifest import load_manifest

    manifest = load_manifest(replicated)
    made = export(read_source(manifest), Options(tmp_path))
    start = next(
        line.removeprefix("ExecStart=")
        for line in made.files["shop-web@.service"].splitlines()
        if line.startswith("ExecStart=")
    )
    port = made.files["shop-web@1.service.d/instance.conf"].splitlines()[1].split("=")[-1]
    words = start.replace("%i", "1").replace("${PORT}", port).split()
    assert tuple(words[1:]) == manifest.services["web.1"].argv[1:]
    assert os.path.basename(words[0]).startswith("python")


def test_a_health_check_that_uses_replica_waits_in_each_instance_for_its_own(
    tmp_path: Path,
) -> None:
    """Before: the template waited for replica 0's check (`test -e ready-0`) in every instance."""
    project = tmp_path / "shop"
    project.mkdir()
    manifest = project / "services.toml"
    manifest.write_text(
        '[services.worker]\ncommand = "python -m worker"\nreplicas = 2\n'
        'healthcheck = { command = "test -e ready-{replica}" }\n'
        '[services.front]\ncommand = "python -m front"\ndepends_on = { worker = "healthy" }\n'
    )
    out = tmp_path / "units"
    run(manifest, "systemd", "-o", str(out))
    assert verify_units(out) == ""
    assert "ExecStartPost" not in (out / "shop-worker@.service").read_text()
    for i in range(2):
        lines = (out / f"shop-worker@{i}.service.d/instance.conf").read_text().splitlines()
        assert lines == [
            "[Service]",
            f"ExecStartPost=/bin/sh -c \"until /bin/sh -c 'test -e ready-{i}'; do sleep 5; done\"",
        ]


def test_a_table_of_no_replicas_exports_even_where_one_would_overlap_a_port(
    tmp_path: Path,
) -> None:
    """Before: a ValueError traceback (its port taken by another, which 0 replicas allow)."""
    manifest = tmp_path / "services.toml"
    manifest.write_text(
        '[services.spare]\ncommand = "python -m spare"\nreplicas = 0\nport = 8000\n'
        '[services.web]\ncommand = "python -m web"\nport = 8000\n'
    )
    for target in ("compose", "k8s", "systemd"):
        text, _ = run(manifest, target)
        assert "spare" in text, target


def test_a_wait_for_a_replicated_job_waits_for_every_completion(tmp_path: Path) -> None:
    """The init container's API poll runs for real against a stand-in for the API server:
    a Job of 3 completions with 1 succeeded is not done yet. Before: it returned at once."""
    import http.server
    import subprocess
    import sys
    import threading

    manifest = tmp_path / "services.toml"
    manifest.write_text(
        '[services.seed]\ncommand = "python -m seed"\nrestart = "never"\nreplicas = 3\n'
        '[services.app]\ncommand = "python -m app"\ndepends_on = { seed = "completed" }\n'
    )
    text, _ = run(manifest, "k8s")
    app = objects_of(text)["Deployment", "app"]["spec"]["template"]["spec"]
    source = app["initContainers"][0]["command"][2]
    answers = iter([1, 3])
    asked: list[str] = []

    class Api(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = f'{{"spec": {{"completions": 3}}, "status": {{"succeeded": {next(answers)}}}}}'
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    folder = tmp_path / "sa"
    folder.mkdir()
    for name, value in (("namespace", "shop"), ("token", "t")):
        (folder / name).write_text(value)
    with http.server.HTTPServer(("127.0.0.1", 0), Api) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        here = f"http://127.0.0.1:{server.server_address[1]}"
        mine = (
            source.replace("/var/run/secrets/kubernetes.io/serviceaccount/", f"{folder}/")
            .replace("https://kubernetes.default.svc", here)
            .replace("ssl.create_default_context(cafile=sa + 'ca.crt')", "None")
        )
        done = subprocess.run([sys.executable, "-c", mine], capture_output=True, timeout=60)
        server.shutdown()
    assert done.returncode == 0, done.stderr
    assert asked == ["/apis/batch/v1/namespaces/shop/jobs/seed"] * 2
