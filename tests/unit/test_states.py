from tuisup.engine.events import ServiceState as S
from tuisup.engine.status import TRANSITIONS


def test_every_state_has_a_row_in_the_transition_table() -> None:
    assert set(TRANSITIONS) == set(S)


def test_the_table_is_the_documented_machine() -> None:
    edges = {(a.value, b.value) for a, targets in TRANSITIONS.items() for b in targets}
    assert edges == {
        ("stopped", "starting"),
        ("stopped", "waiting"),
        ("waiting", "waiting"),
        ("waiting", "starting"),
        ("waiting", "stopped"),
        ("backoff", "waiting"),
        ("exited", "waiting"),
        ("failed", "waiting"),
        # a dependency failed for good
        ("stopped", "failed"),
        ("waiting", "failed"),
        ("backoff", "failed"),
        ("exited", "failed"),
        ("failed", "failed"),
        # an unhealthy run, restarted as a failure
        ("stopping", "backoff"),
        ("starting", "running"),
        ("starting", "failed"),
        # a stop asked for while it starts ends the start
        ("starting", "stopping"),
        ("running", "stopping"),
        ("running", "backoff"),
        ("running", "exited"),
        ("running", "failed"),
        ("backoff", "starting"),
        ("backoff", "stopped"),
        ("stopping", "stopped"),
        ("stopping", "failed"),
        ("exited", "starting"),
        ("failed", "starting"),
    }
