"""The retry policy is a value: its delays can be checked without waiting for them."""

from __future__ import annotations

from gateway.commands.retry import RetryPolicy, parse_retry_after


def test_delays_grow_exponentially_within_the_jitter_band_and_stop_at_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10, initial_seconds=1.0, max_seconds=30.0, jitter=0.5)
    assert [policy.delay(attempt, draw=lambda: 0.0) for attempt in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert [policy.delay(attempt, draw=lambda: 1.0) for attempt in range(1, 4)] == [0.5, 1, 2]


def test_retry_after_wins_when_longer_even_past_the_backoff_cap_but_not_past_an_hour() -> None:
    policy = RetryPolicy(initial_seconds=1.0, max_seconds=60.0)
    assert policy.delay(1, retry_after=20, draw=lambda: 0.0) == 20
    assert policy.delay(1, retry_after=0.1, draw=lambda: 0.0) == 1.0
    assert policy.delay(1, retry_after=600, draw=lambda: 0.0) == 600
    assert policy.delay(1, retry_after=86_400, draw=lambda: 0.0) == 3600


def test_attempts_run_out_at_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert not policy.exhausted(2)
    assert policy.exhausted(3)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after("120", now=0) == 120
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == 10
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490) == 0
    assert parse_retry_after("soon", now=0) is None
    assert parse_retry_after(None, now=0) is None
