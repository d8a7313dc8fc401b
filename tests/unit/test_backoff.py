import random

import pytest

from tuisup.engine.backoff import Backoff
from tuisup.spec import BackoffKind


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (BackoffKind.IMMEDIATE, [0, 0, 0, 0, 0, 0, 0]),
        (BackoffKind.FIXED, [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]),
        (BackoffKind.LINEAR, [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0]),
        (BackoffKind.EXPONENTIAL, [0.5, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0]),
    ],
)
def test_delay_sequences_are_exact_and_capped(kind: BackoffKind, expected: list[float]) -> None:
    backoff = Backoff(kind, delay=0.5, cap=3.0, jitter=0.0)
    assert [backoff.next_delay() for _ in expected] == expected


def test_exponential_does_not_overflow_after_thousands_of_attempts() -> None:
    assert BackoffKind.EXPONENTIAL.delay(5000, 1.0, 60.0) == 60.0


def test_reset_starts_from_the_first_delay() -> None:
    backoff = Backoff(BackoffKind.EXPONENTIAL, delay=1.0, cap=60.0, jitter=0.0)
    for _ in range(4):
        backoff.next_delay()
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.next_delay() == 1.0


def test_jitter_stays_within_its_fraction_and_varies() -> None:
    backoff = Backoff(BackoffKind.FIXED, delay=2.0, cap=10.0, jitter=0.25, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(2000)]
    assert all(1.5 <= d <= 2.5 for d in delays)
    assert min(delays) < 1.55 and max(delays) > 2.45
    assert len(set(delays)) > 1900


def test_jitter_leaves_an_immediate_restart_immediate() -> None:
    backoff = Backoff(BackoffKind.IMMEDIATE, delay=1.0, cap=1.0, jitter=0.5)
    assert {backoff.next_delay() for _ in range(50)} == {0.0}


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError):
        BackoffKind.LINEAR.delay(0, 1.0, 1.0)
