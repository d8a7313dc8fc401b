"""Tests for depends_on, healthcheck and their whole-manifest checks: values and messages."""

from __future__ import annotations

import pytest

from tests.unit.test_manifest import problems, write
from tuisup.manifest import load_manifest
from tuisup.spec import Condition, HealthCheck, HealthKind

pytestmark = pytest.mark.usefixtures("here")


CHAIN = """\
[services.api]
command = "python -m api"
depends_on = { db = "healthy", migrate = "completed" }
restart_on_unhealthy = true
healthcheck.http = "http://127.0.0.1:8000/health?deep=1"
healthcheck.interval = 2
healthcheck.timeout = 1
healthcheck.retries = 4
healthcheck.start_period = 5

[services.db]
command = "postgres"
healthcheck = { command = "pg_isready -h 127.0.0.1" }
restart_dependents = true

[services.migrate]
command = "python -m migrate"
restart = "never"

[services.worker]
command = "python -m worker"
depends_on = ["api", "db"]
healthcheck = { tcp = "localhost:5432", status = 200 }
"""


def test_a_chain_loads_with_every_field() -> None:
    text = CHAIN.replace(", status = 200", "")
    services = load_manifest(write(text)).services
    api, db, worker = services["api"], services["db"], services["worker"]
    assert api.depends_on == {"db": Condition.HEALTHY, "migrate": Condition.COMPLETED}
    assert list(worker.depends_on.items()) == [("api", "started"), ("db", "started")]
    assert api.restart_on_unhealthy and db.restart_dependents
    assert api.healthcheck == HealthCheck(
        kind=HealthKind.HTTP,
        target="http://127.0.0.1:8000/health?deep=1",
        host="127.0.0.1",
        port=8000,
        path="/health?deep=1",
        interval=2,
        timeout=1,
        retries=4,
        start_period=5,
    )
    assert db.healthcheck == HealthCheck(
        kind=HealthKind.COMMAND,
        target="pg_isready -h 127.0.0.1",
        argv=("/bin/sh", "-c", "pg_isready -h 127.0.0.1"),
    )
    assert services["migrate"].healthcheck is None and not services["migrate"].depends_on


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        ("{ tcp = 5432 }", ("127.0.0.1", 5432, "127.0.0.1:5432")),
        ('{ tcp = "db.local:6379" }', ("db.local", 6379, "db.local:6379")),
        ('{ tcp = "[::1]:80" }', ("::1", 80, "::1:80")),
        ('{ http = "https://localhost/" }', ("localhost", 443, "https://localhost/")),
        ('{ http = "http://[::1]:9000" }', ("::1", 9000, "http://[::1]:9000")),
    ],
)
def test_probe_addresses(check: str, expected: tuple[str, int, str]) -> None:
    text = f'[services.a]\ncommand = "x"\nhealthcheck = {check}\n'
    health = load_manifest(write(text)).services["a"].healthcheck
    assert health is not None
    assert (health.host, health.port, health.target) == expected


def test_unknown_and_self_dependencies_name_the_entry() -> None:
    assert problems(
        """\
[services.api]
command = "x"
depends_on = ["dbb", "api"]

[services.db]
command = "x"
"""
    ) == [
        "services.toml:3:15: services.api.depends_on[0]: "
        'unknown service "dbb" (did you mean "db"?)',
        "services.toml:3:22: services.api.depends_on[1]: api cannot depend on itself",
    ]


def test_a_cycle_is_named_once_from_its_first_service() -> None:
    assert problems(
        """\
[services.a]
command = "x"
depends_on = ["b"]

[services.b]
command = "x"
depends_on = { c = "started" }

[services.c]
command = "x"
depends_on = ["a"]

[services.d]
command = "x"
depends_on = ["e"]

[services.e]
command = "x"
depends_on = ["d"]
"""
    ) == [
        "services.toml:3:15: services.a.depends_on[0]: dependency cycle: a → b → c → a",
        "services.toml:15:15: services.d.depends_on[0]: dependency cycle: d → e → d",
    ]


def test_conditions_that_can_never_hold() -> None:
    assert problems(
        """\
[services.api]
command = "x"
depends_on = { db = "healthy", jobs = "completed" }

[services.db]
command = "x"

[services.jobs]
command = "x"
restart = "always"
"""
    ) == [
        'services.toml:3:21: services.api.depends_on.db: "healthy" can never hold: '
        "db has no healthcheck",
        'services.toml:3:39: services.api.depends_on.jobs: "completed" can never hold: '
        'jobs has restart = "always"',
    ]


def test_a_broken_service_still_has_its_dependencies_checked() -> None:
    assert problems(
        """\
[services.api]
command = 5
depends_on = ["nope"]
"""
    ) == [
        "services.toml:2:11: services.api.command: expected a string or an array of strings, "
        "got integer 5",
        'services.toml:3:15: services.api.depends_on[0]: unknown service "nope"',
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "depends_on = 5",
            "3:14: services.a.depends_on: expected an array of service names or a table, "
            "got integer 5",
        ),
        ('depends_on = ["b", "b"]', '3:20: services.a.depends_on[1]: "b" is listed twice'),
        (
            "depends_on = [1]",
            "3:15: services.a.depends_on[0]: expected a service name, got integer 1",
        ),
        (
            'depends_on = { b = "ready" }',
            '3:20: services.a.depends_on.b: expected one of "started", "healthy", "completed", '
            'got "ready"',
        ),
        (
            "healthcheck = {}",
            "3:15: services.a.healthcheck: expected exactly one of command, tcp or http, got none",
        ),
        (
            'healthcheck = { tcp = 1, http = "http://x" }',
            "3:15: services.a.healthcheck: expected exactly one of command, tcp or http, "
            "got tcp and http",
        ),
        (
            "healthcheck = { tcp = 0 }",
            '3:23: services.a.healthcheck.tcp: expected a port or "host:port", got integer 0',
        ),
        (
            'healthcheck = { http = "localhost:8000" }',
            "3:24: services.a.healthcheck.http: expected a URL such as "
            '"http://127.0.0.1:8000/health", got "localhost:8000"',
        ),
        (
            'healthcheck = { http = "http://x", status = 99 }',
            "3:45: services.a.healthcheck.status: expected an HTTP status 100-599, got integer 99",
        ),
        (
            'healthcheck = { command = "x", status = 200 }',
            "3:32: services.a.healthcheck.status: status applies to an http check",
        ),
        (
            'healthcheck = { command = "" }',
            "3:27: services.a.healthcheck.command: expected a command, got an empty string",
        ),
        (
            'healthcheck = { command = "x", interval = 0 }',
            "3:43: services.a.healthcheck.interval: expected a number > 0, got 0",
        ),
        (
            'healthcheck = { command = "x", retry = 3 }',
            '3:32: services.a.healthcheck.retry: unknown key "retry" (did you mean "retries"?)',
        ),
        (
            "restart_on_unhealthy = true",
            "3:1: services.a.restart_on_unhealthy: needs a healthcheck",
        ),
        (
            'restart_on_unhealthy = true\nrestart = "never"\nhealthcheck = { tcp = 1 }',
            "3:1: services.a.restart_on_unhealthy: an unhealthy run is a failure, "
            'and restart = "never" restarts none',
        ),
    ],
)
def test_value_problems(body: str, expected: str) -> None:
    text = f'[services.a]\ncommand = "x"\n{body}\n\n[services.b]\ncommand = "x"\n'
    assert problems(text) == [f"services.toml:{expected}"]
