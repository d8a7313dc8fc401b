"""Tests for `listen` and `listen_buffer`: values, messages, and what a change to them does."""

from __future__ import annotations

import pytest

from tests.unit.test_manifest import problems, write
from tuisup.engine.reload import plan_reload
from tuisup.manifest import load_manifest
from tuisup.manifest.listen import kinds
from tuisup.spec import Listen

pytestmark = pytest.mark.usefixtures("here")


LISTENERS = """\
[services.api]
command = "python -m api"

[services.db]
command = "postgres"

[services.alerts]
command = "python -m myapp.alerts"
listen = { kinds = ["state", "health"], services = ["api", "db"] }

[services.everything]
target = "myapp.log:follow"
executor = "async-process"
listen = {}
listen_buffer = 50
"""


def test_listeners_load_with_their_settings_and_defaults() -> None:
    services = load_manifest(write(LISTENERS)).services
    assert services["alerts"].listen == Listen(kinds=("state", "health"), services=("api", "db"))
    assert services["alerts"].listen_buffer == 1000
    assert services["everything"].listen == Listen()
    assert services["everything"].listen_buffer == 50
    assert services["api"].listen is None


def test_listen_wants_the_kinds_and_services_it_names_and_every_host_event() -> None:
    listen = Listen(kinds=("state",), services=("db",))
    assert listen.wants("state", "db")
    assert not listen.wants("state", "api")
    assert not listen.wants("health", "db")
    assert listen.wants("state", None)  # about the host, not a service
    assert Listen().wants("output", "api")


def test_the_kinds_are_the_events_words_but_those_always_sent() -> None:
    assert {"state", "health", "output", "restart_scheduled", "files_changed"} <= set(kinds())
    assert not {"snapshot", "missed", "status", "event"} & set(kinds())


def test_bad_listen_values_are_each_reported_where_they_are() -> None:
    text = """\
[services.db]
command = "postgres"
[services.alerts]
command = "cat"
listen = { kinds = ["state", "helth", "missed", 3], services = ["db", "dbb", "db"], when = 1 }
listen_buffer = 0
[services.v]
command = "cat"
listen = { kinds = [] }
[services.w]
command = "cat"
listen = "all"
[services.u]
command = "cat"
listen_buffer = 5
"""
    found = problems(text)
    assert found[0].startswith(
        "services.toml:5:30: services.alerts.listen.kinds[1]: "
        'expected one of "control_refused", "files_changed",'
    )
    assert found[0].endswith(', got "helth" (did you mean "health"?)')
    assert found[1:] == [
        'services.toml:5:39: services.alerts.listen.kinds[2]: "missed" is always sent: '
        "list the other kinds only",
        "services.toml:5:49: services.alerts.listen.kinds[3]: expected an event kind, "
        "got integer 3",
        'services.toml:5:71: services.alerts.listen.services[1]: unknown service "dbb" '
        '(did you mean "db"?)',
        'services.toml:5:78: services.alerts.listen.services[2]: "db" is listed twice',
        'services.toml:5:85: services.alerts.listen.when: unknown key "when"',
        "services.toml:6:17: services.alerts.listen_buffer: expected an integer >= 1, got 0",
        "services.toml:9:20: services.v.listen.kinds: expected at least one "
        "(leave kinds out for all)",
        "services.toml:12:10: services.w.listen: expected a table such as "
        '{ kinds = ["state"], services = ["db"] }, got string "all"',
        "services.toml:15:1: services.u.listen_buffer: listen_buffer applies to a listener "
        "only: add listen",
    ]


@pytest.mark.parametrize("executor", [None, "thread", "async"])
def test_an_in_process_service_cannot_listen(executor: str | None) -> None:
    kind = f'executor = "{executor}"\n' if executor else ""
    found = problems(f'[services.t]\ntarget = "m:f"\n{kind}listen = {{}}\n')
    where = f'executor = "{executor}"' if executor else "an in-process service"
    line = 4 if executor else 3
    assert found == [
        f"services.toml:{line}:1: services.t.listen: listen cannot apply to {where}: it has "
        'no stdin of its own; use executor = "process" or "async-process"'
    ]


def test_a_listener_may_listen_to_itself() -> None:
    text = '[services.a]\ncommand = "cat"\nlisten = { services = ["a"] }\n'
    assert load_manifest(write(text)).services["a"].listen == Listen(services=("a",))


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("", 'listen = { kinds = ["state"] }'),
        ('listen = { kinds = ["state"] }', 'listen = { kinds = ["health"] }'),
        ("listen = {}", "listen = {}\nlisten_buffer = 5"),
    ],
)
def test_a_change_to_listen_restarts_the_service(before: str, after: str) -> None:
    """Its stdin is made at its start: another listen needs another run."""
    old = load_manifest(write(f'[services.a]\ncommand = "cat"\n{before}\n')).services
    new = load_manifest(write(f'[services.a]\ncommand = "cat"\n{after}\n')).services
    plan = plan_reload(old, new)
    assert (plan.changed, plan.updated) == (("a",), ())
