from __future__ import annotations

import random

import pytest

from flowrt import ErrorHandling
from flowrt._engine.backoff import wait_before_retry


def test_waits_grow_exponentially() -> None:
    policy = ErrorHandling(retry_interval_seconds=2, backoff_rate=3)
    assert [wait_before_retry(policy, k) for k in range(4)] == [2, 6, 18, 54]


def test_max_interval_caps_the_wait() -> None:
    policy = ErrorHandling(retry_interval_seconds=1, backoff_rate=2, max_interval_seconds=5)
    assert [wait_before_retry(policy, k) for k in range(5)] == [1, 2, 4, 5, 5]


@pytest.mark.parametrize("jitter", [0.25, 0.5, 1.0])
def test_jitter_draws_within_its_fraction_of_the_wait(jitter: float) -> None:
    policy = ErrorHandling(retry_interval_seconds=10, jitter=jitter)
    rng = random.Random(7)
    waits = [wait_before_retry(policy, 0, rng) for _ in range(2000)]
    assert min(waits) >= 10 * (1 - jitter)
    assert max(waits) <= 10
    # spread over the allowed range, not stuck at one end
    assert max(waits) - min(waits) > 10 * jitter * 0.9


def test_jitter_applies_after_the_cap() -> None:
    policy = ErrorHandling(
        retry_interval_seconds=1, backoff_rate=10, max_interval_seconds=4, jitter=0.5
    )
    rng = random.Random(1)
    waits = [wait_before_retry(policy, 3, rng) for _ in range(500)]
    assert min(waits) >= 2
    assert max(waits) <= 4


def test_injected_rng_makes_waits_reproducible() -> None:
    policy = ErrorHandling(retry_interval_seconds=1, jitter=1)
    first = [wait_before_retry(policy, k, random.Random(3)) for k in range(3)]
    second = [wait_before_retry(policy, k, random.Random(3)) for k in range(3)]
    assert first == second
