"""Tests for a service's `on` table (event hooks) and `hook_timeout`: values and messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.unit.test_manifest import problems, write
from tuisup.engine.reload import plan_reload
from tuisup.engine.status import spec_view
from tuisup.manifest import load_manifest
from tuisup.model import SpecView
from tuisup.model.record import replace
from tuisup.spec import Hook, HookEvent

pytestmark = pytest.mark.usefixtures("here")


HOOKS = """\
[services.api]
command = "python -m api"
healthcheck = { tcp = 8000 }
watch = ["src"]
hook_timeout = 2.5

[services.api.on]
failed = "notify-send 'api failed' \\"$TUISUP_REASON\\""
unhealthy = ["./scripts/dump-threads.sh", "--all"]
exited = "echo $TUISUP_EXIT_CODE >> exits.txt"
started = "true"
restarting = "true"
healthy = "true"
stopped = "true"
files_changed = "make lint"
"""


def test_every_hook_key_loads_a_string_through_the_shell_and_an_array_as_given() -> None:
    spec = load_manifest(write(HOOKS)).services["api"]
    assert list(spec.hooks) == [
        HookEvent.FAILED,
        HookEvent.UNHEALTHY,
        HookEvent.EXITED,
        HookEvent.STARTED,
        HookEvent.RESTARTING,
        HookEvent.HEALTHY,
        HookEvent.STOPPED,
        HookEvent.FILES_CHANGED,
    ]
    reason = "notify-send 'api failed' \"$TUISUP_REASON\""
    assert spec.hooks[HookEvent.FAILED] == Hook(argv=("/bin/sh", "-c", reason), command=reason)
    assert spec.hooks[HookEvent.UNHEALTHY] == Hook(
        argv=("./scripts/dump-threads.sh", "--all"), command="./scripts/dump-threads.sh --all"
    )
    assert spec.hook_timeout == 2.5


def test_a_service_without_hooks_has_none_and_the_default_timeout() -> None:
    spec = load_manifest(write('[services.web]\ncommand = "run"\n')).services["web"]
    assert spec.hooks == {}
    assert spec.hook_timeout == 10.0


HOOK_PROBLEMS = [
    (
        'on = { exit = "true" }',
        '2:8: services.web.on.exit: unknown key "exit" (did you mean "exited"?)',
    ),
    (
        'on = { crashed = "true" }',
        '2:8: services.web.on.crashed: unknown key "crashed"',
    ),
    ('on = "true"', '2:6: services.web.on: expected a table, got string "true"'),
    (
        'on = { stopped = "" }',
        "2:18: services.web.on.stopped: expected a command, got an empty string",
    ),
    (
        "on = { stopped = [] }",
        "2:18: services.web.on.stopped: expected a command, got an empty array",
    ),
    (
        'on = { stopped = ["a", 5] }',
        "2:24: services.web.on.stopped[1]: expected a string, got integer 5",
    ),
    (
        "on = { stopped = 5 }",
        "2:18: services.web.on.stopped: expected a string or an array of strings, got integer 5",
    ),
    ("hook_timeout = 0", "2:16: services.web.hook_timeout: expected a number > 0, got 0"),
    (
        'hook_timeout = "10s"',
        '2:16: services.web.hook_timeout: expected a number, got string "10s"',
    ),
    (
        'on = { healthy = "true" }',
        "2:8: services.web.on.healthy: can never run: web has no healthcheck",
    ),
    (
        'on = { unhealthy = "true" }',
        "2:8: services.web.on.unhealthy: can never run: web has no healthcheck",
    ),
    (
        'on = { files_changed = "true" }',
        "2:8: services.web.on.files_changed: can never run: web watches no files",
    ),
    (
        'restart = "never"\non = { restarting = "true" }',
        '3:8: services.web.on.restarting: can never run: web has restart = "never"',
    ),
]


@pytest.mark.parametrize(("body", "expected"), HOOK_PROBLEMS)
def test_hook_problem(body: str, expected: str) -> None:
    text = f'[services.web]\n{body}\ncommand = "run"\n'
    assert problems(text) == [f"services.toml:{expected}"]


def test_a_change_to_hooks_applies_in_place_without_a_restart() -> None:
    old = load_manifest(write(HOOKS)).services
    edited = HOOKS.replace('started = "true"', 'started = "echo up"').replace("2.5", "4")
    new = load_manifest(write(edited)).services
    plan = plan_reload(old, new)
    assert plan.updated == ("api",)
    assert plan.changed == ()


def test_the_spec_view_lists_the_hooks_as_written_and_survives_json() -> None:
    spec = load_manifest(write(HOOKS)).services["api"]
    view = spec_view(spec)
    assert view.hooks["unhealthy"] == "./scripts/dump-threads.sh --all"
    assert view.hooks["exited"] == "echo $TUISUP_EXIT_CODE >> exits.txt"
    assert list(view.hooks) == [str(key) for key in spec.hooks]
    assert view.hook_timeout == 2.5
    assert SpecView.from_json(view.to_json()) == view
    bare = spec_view(replace(spec, hooks={}))
    assert "hooks" not in bare.to_json() or bare.to_json()["hooks"] == {}


README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_hooks_example_loads_and_its_table_names_every_event() -> None:
    section = README.read_text().split("### Hooks", 1)[1].split("\n## ", 1)[0]
    block = section.split("```toml", 1)[1].split("```")[0]
    spec = load_manifest(write(block)).services["api"]
    assert list(spec.hooks) == [HookEvent.FAILED, HookEvent.UNHEALTHY, HookEvent.EXITED]
    table = section.split("| key | runs when |", 1)[1].split("\n\n", 1)[0]
    named = {word for word in re.findall(r"`(\w+)`", table) if word in set(HookEvent)}
    assert named == set(HookEvent)
