"""Tests for replicas and ports in the manifest: names, substitution, variables, port overlaps."""

from __future__ import annotations

import pytest

from tests.unit.test_manifest import problems, write
from tuisup.engine.deps import Graph
from tuisup.manifest import load_manifest

pytestmark = pytest.mark.usefixtures("here")


WEB = """\
[services.web]
command = "python -m app.web --port {port} --id {replica}"
replicas = 3
port = 8000
env = { NAME = "web-{replica}", URL = "http://127.0.0.1:{port}/" }
healthcheck = { http = "http://127.0.0.1:{port}/health" }

[services.db]
command = "sleep 9"
port = 5432

[services.api]
command = "sleep 9"
depends_on = ["web"]
"""


def test_replicas_are_named_table_dot_index_and_take_their_own_port() -> None:
    manifest = load_manifest(write(WEB))
    assert list(manifest.services) == ["web.0", "web.1", "web.2", "db", "api"]
    web1 = manifest.services["web.1"]
    assert (web1.replica, web1.port, web1.declared) == (1, 8001, "web")
    assert web1.argv == ("python", "-m", "app.web", "--port", "8001", "--id", "1")
    assert web1.env["NAME"] == "web-1" and web1.env["URL"] == "http://127.0.0.1:8001/"
    assert web1.healthcheck is not None and web1.healthcheck.port == 8001
    assert web1.healthcheck.target == "http://127.0.0.1:8001/health"
    assert manifest.services["db"].replica is None and manifest.services["db"].port == 5432


def test_every_process_gets_the_ports_of_all_and_its_own_replica_and_port() -> None:
    manifest = load_manifest(write(WEB))
    ports = {"TUISUP_PORT_WEB": "8000", "TUISUP_PORT_DB": "5432"}
    assert manifest.services["web.2"].env == {
        **ports,
        "TUISUP_REPLICA": "2",
        "PORT": "8002",
        "NAME": "web-2",
        "URL": "http://127.0.0.1:8002/",
    }
    assert manifest.services["db"].env == {**ports, "PORT": "5432"}
    assert manifest.services["api"].env == ports


def test_a_dependency_on_a_replicated_table_is_one_on_each_replica() -> None:
    manifest = load_manifest(write(WEB))
    graph = Graph(manifest.services)
    assert list(graph.needs["api"]) == ["web.0", "web.1", "web.2"]
    assert graph.dependents["web.1"] == ["api"]


def test_zero_replicas_is_declared_but_makes_no_service() -> None:
    manifest = load_manifest(write(WEB.replace("replicas = 3", "replicas = 0")))
    assert list(manifest.services) == ["db", "api"]
    assert manifest.instances("web") == [] and manifest.templates["web"].replicas == 0
    assert Graph(manifest.services).needs["api"] == {}


def test_a_mistake_in_a_replicated_table_is_reported_once() -> None:
    text = WEB.replace('healthcheck = { http = "http://127.0.0.1:{port}/health" }', "jitter = 2")
    assert problems(text) == [
        "services.toml:6:10: services.web.jitter: expected a number from 0 to 1, got 2"
    ]


def test_ports_that_overlap_are_a_problem_at_the_later_port() -> None:
    text = WEB.replace("port = 5432", "port = 8002")
    assert problems(text) == [
        "services.toml:10:8: services.db.port: ports 8002 overlap web's 8000-8002 (line 4)"
    ]


def test_port_and_replicas_are_checked() -> None:
    text = WEB.replace("replicas = 3", "replicas = -1").replace("port = 5432", 'port = "x"')
    assert problems(text) == [
        "services.toml:3:12: services.web.replicas: expected an integer >= 0, got -1",
        'services.toml:10:8: services.db.port: expected a port from 1 to 65535, got string "x"',
    ]
    assert problems(WEB.replace("port = 8000", "port = 65534")) == [
        "services.toml:4:8: services.web.port: its replicas' ports 65534-65536 pass 65535"
    ]


def test_port_placeholder_without_a_port_is_a_problem() -> None:
    text = WEB.replace("port = 8000\n", "")
    found = problems(text)
    assert found[0] == (
        "services.toml:2:11: services.web.command: uses {port}, but the service has no port key"
    )


def test_a_table_without_replicas_or_port_keeps_braces_as_written() -> None:
    manifest = load_manifest(write('[services.sh]\ncommand = "echo ${port} {replica}"\n'))
    assert manifest.services["sh"].argv == ("echo", "${port}", "{replica}")
