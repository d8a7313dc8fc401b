"""Tests for `[groups.NAME]` tables: what they become, and every problem they report."""

from __future__ import annotations

import pytest

from tests.unit.test_manifest import problems, write
from tuisup.manifest import load_manifest
from tuisup.spec import GroupFailure, GroupSpec, GroupStrategy

pytestmark = pytest.mark.usefixtures("here")


SERVICES = """\
[services.broker]
command = "sleep 9"

[services.consumer]
command = "sleep 9"
replicas = 2
depends_on = ["broker"]

[services.indexer]
command = "sleep 9"

[services.lone]
command = "sleep 9"
"""

PIPELINE = """
[groups.pipeline]
services = ["broker", "consumer", "indexer"]
strategy = "rest_for_one"
max_restarts = 2
restart_window = 10
on_failure = "shutdown"
"""


def test_a_group_is_read_and_its_members_know_it() -> None:
    manifest = load_manifest(write(SERVICES + PIPELINE))
    assert manifest.groups == {
        "pipeline": GroupSpec(
            name="pipeline",
            services=("broker", "consumer", "indexer"),
            strategy=GroupStrategy.REST_FOR_ONE,
            max_restarts=2,
            restart_window=10.0,
            on_failure=GroupFailure.SHUTDOWN,
            line=15,
        )
    }
    groups = {name: spec.group_name for name, spec in manifest.services.items()}
    assert groups == {
        "broker": "pipeline",
        "consumer.0": "pipeline",
        "consumer.1": "pipeline",
        "indexer": "pipeline",
        "lone": None,
    }


def test_defaults_are_one_for_one_three_in_five_seconds_then_stop() -> None:
    manifest = load_manifest(write(SERVICES + '[groups.g]\nservices = ["lone"]\n'))
    group = manifest.groups["g"]
    assert (group.strategy, group.max_restarts, group.restart_window, group.on_failure) == (
        GroupStrategy.ONE_FOR_ONE,
        3,
        5.0,
        GroupFailure.STOP,
    )


def test_unknown_members_empty_groups_and_a_service_in_two_are_errors() -> None:
    text = SERVICES + (
        '[groups.a]\nservices = ["broker", "indexr"]\n'
        "[groups.b]\nservices = []\n"
        '[groups.c]\nservices = ["broker"]\nstrategy = "one_for_al"\n'
        '[groups.lone]\nservices = ["indexer"]\n'
        '[groups.d]\nservice = ["lone"]\n'
    )
    assert problems(text) == [
        'services.toml:15:23: groups.a.services[1]: unknown service "indexr" '
        '(did you mean "indexer"?)',
        "services.toml:17:12: groups.b.services: a group needs at least one service",
        "services.toml:19:13: groups.c.services[0]: broker is already in group a: a service "
        "is in one",
        'services.toml:20:12: groups.c.strategy: expected one of "one_for_one", "one_for_all", '
        '"rest_for_one", got "one_for_al" (did you mean "one_for_all"?)',
        "services.toml:21:1: groups.lone: group lone has the name of a service: name it otherwise",
        'services.toml:23:1: groups.d: missing required key "services"',
        'services.toml:24:1: groups.d.service: unknown key "service" (did you mean "services"?)',
    ]


def test_an_order_against_depends_on_is_an_error() -> None:
    text = SERVICES + '[groups.p]\nservices = ["consumer", "broker"]\n'
    assert problems(text) == [
        "services.toml:15:13: groups.p.services[0]: consumer depends on broker, which the "
        "group starts after it: list broker before consumer"
    ]
