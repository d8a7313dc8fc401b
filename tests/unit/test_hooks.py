"""Which events run which hooks, what a run's environment says, and the `hook` event's words."""

from __future__ import annotations

import json

import pytest

from tuisup.engine.events import (
    Event,
    FilesChanged,
    Health,
    HealthChanged,
    HookRan,
    Output,
    RestartScheduled,
    ServiceState,
    StateChanged,
)
from tuisup.engine.hooks import hook_env, hooks_of
from tuisup.model import event_from_json
from tuisup.spec import HookEvent

S = ServiceState
E = HookEvent


def state(old: ServiceState, new: ServiceState, **fields: object) -> StateChanged:
    return StateChanged(seq=7, ts=1.0, service="api", old=old, state=new, **fields)


EXIT = {"exit_code": 3, "runtime": 1.5}
CASES: list[tuple[Event, list[HookEvent]]] = [
    (state(S.STARTING, S.RUNNING, pid=42), [E.STARTED]),
    (state(S.RUNNING, S.EXITED, **EXIT), [E.EXITED]),
    (state(S.RUNNING, S.BACKOFF, **EXIT), [E.EXITED]),
    (state(S.RUNNING, S.FAILED, **EXIT, reason="5 restarts in 60s"), [E.EXITED, E.FAILED]),
    (state(S.STARTING, S.FAILED, reason="cannot start: nope"), [E.FAILED]),
    (state(S.STOPPING, S.STOPPED, signal=15, runtime=2.0), [E.STOPPED]),
    (state(S.BACKOFF, S.STOPPED, reason="stopped during backoff"), [E.STOPPED]),
    # An unhealthy run stopped to be restarted did not end by itself: no `exited`.
    (state(S.STOPPING, S.BACKOFF, signal=15, runtime=2.0, reason="unhealthy"), []),
    (state(S.STOPPED, S.STARTING), []),
    (state(S.STOPPED, S.WAITING, reason="waiting for db"), []),
    (RestartScheduled(seq=1, ts=1.0, service="api", attempt=1, delay=0.5), [E.RESTARTING]),
    (
        HealthChanged(seq=1, ts=1.0, service="api", old=Health.UNKNOWN, health=Health.HEALTHY),
        [E.HEALTHY],
    ),
    (
        HealthChanged(seq=1, ts=1.0, service="api", old=Health.HEALTHY, health=Health.UNHEALTHY),
        [E.UNHEALTHY],
    ),
    (
        HealthChanged(seq=1, ts=1.0, service="api", old=Health.HEALTHY, health=Health.UNKNOWN),
        [],
    ),
    (FilesChanged(seq=1, ts=1.0, service="api", paths=("app.py",)), [E.FILES_CHANGED]),
]


@pytest.mark.parametrize(("event", "hooks"), CASES)
def test_which_hooks_an_event_runs(event: Event, hooks: list[HookEvent]) -> None:
    found = hooks_of(event)
    assert (found[1] if found is not None else []) == hooks
    if found is not None:
        assert found[0] == "api"


def test_events_about_no_service_state_run_no_hook() -> None:
    output = Output(seq=1, ts=1.0, service="api", stream="stdout", first_line=1, count=1)
    assert hooks_of(output) is None


def test_a_runs_environment_says_what_applies_and_carries_the_event_as_json() -> None:
    event = state(S.RUNNING, S.FAILED, signal=9, runtime=1.0, reason="5 restarts\0 in 60s")
    env = hook_env(E.FAILED, event, S.FAILED, 3)
    assert env["TUISUP_HOOK"] == "failed" and env["TUISUP_STATE"] == "failed"
    assert env["TUISUP_SIGNAL"] == "9" and "TUISUP_EXIT_CODE" not in env
    assert env["TUISUP_REASON"] == "5 restarts in 60s"  # no variable can hold a NUL
    assert env["TUISUP_COALESCED"] == "3"
    assert json.loads(env["TUISUP_EVENT"]) == event.to_json()
    health = HealthChanged(
        seq=1, ts=1.0, service="api", old=Health.HEALTHY, health=Health.UNHEALTHY, reason="HTTP 503"
    )
    assert hook_env(E.UNHEALTHY, health, S.RUNNING, 1)["TUISUP_REASON"] == "HTTP 503"
    quiet = hook_env(E.STARTED, state(S.STARTING, S.RUNNING, pid=4), S.RUNNING, 1)
    assert not {"TUISUP_REASON", "TUISUP_EXIT_CODE", "TUISUP_SIGNAL"} & quiet.keys()


def ran(**fields: object) -> HookRan:
    values = {"seq": 1, "ts": 1.0, "service": "api", "hook": "exited", "command": "./x.sh"}
    return HookRan(**{**values, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "words"),
    [
        (ran(exit_code=0, runtime=0.25), 'hook "exited" ran in 0.2s'),
        (ran(exit_code=2, runtime=1.04), 'hook "exited" failed with code 2 after 1.0s'),
        (ran(signal=15, runtime=3.0), 'hook "exited" failed with signal 15 (SIGTERM) after 3.0s'),
        (
            ran(signal=9, timed_out=True, timeout=2.5, runtime=2.61),
            'hook "exited" timed out after 2.5s: killed',
        ),
        (
            ran(error="cannot run: No such file or directory: ./x.sh"),
            'hook "exited" cannot run: No such file or directory: ./x.sh',
        ),
        (ran(exit_code=0, runtime=0.1, coalesced=37), 'hook "exited" ran in 0.1s (for 37 events)'),
    ],
)
def test_a_hook_event_in_words(event: HookRan, words: str) -> None:
    assert event.describe() == words
    assert event.succeeded == words.startswith('hook "exited" ran')


def test_a_hook_event_survives_json() -> None:
    event = ran(signal=9, timed_out=True, timeout=2.5, runtime=2.61, coalesced=4)
    data = event.to_json()
    assert data["event"] == "hook" and data["timed_out"] is True and "exit_code" not in data
    assert event_from_json(json.loads(json.dumps(data))) == event
