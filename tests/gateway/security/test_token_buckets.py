"""Per-key token buckets: refusal, refill, forgetting idle keys, and what forgetting costs."""

from __future__ import annotations

import pytest

from gateway.security import rate_limits
from gateway.security.rate_limits import TokenBuckets


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _CountingSweeps(TokenBuckets):
    sweeps = 0

    def _sweep(self, now: float) -> None:
        self.sweeps += 1
        super()._sweep(now)


def test_a_key_gets_its_burst_then_waits_for_the_refill() -> None:
    clock = _Clock()
    buckets = TokenBuckets(per_minute=30, burst=3, clock=clock)
    for _ in range(3):
        assert buckets.wait_for("device-a") == 0.0
        buckets.take("device-a")
    assert buckets.wait_for("device-a") == pytest.approx(2.0)  # 30 a minute: one token every 2 s
    assert buckets.wait_for("device-b") == 0.0  # another key is not held back
    clock.now += 2.0
    assert buckets.wait_for("device-a") == 0.0


def test_idle_keys_are_forgotten_and_busy_ones_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rate_limits, "_FIRST_SWEEP_AT", 100)
    clock = _Clock()
    buckets = TokenBuckets(per_minute=60, burst=2, clock=clock)
    for number in range(99):
        buckets.take(f"idle-{number}")
    clock.now += 10.0  # every idle key has refilled
    buckets.take("busy")
    buckets.take("busy")
    buckets.take("new")  # the 101st key: the sweep runs first
    assert buckets.held == 2
    assert buckets.wait_for("busy") == pytest.approx(1.0)  # what it had taken is still counted


def test_a_sweep_that_frees_nothing_is_not_repeated_for_every_new_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """At one login a minute a key stays held for a minute: with more keys than the sweep threshold used within
    that minute, every new key used to sweep them all again on the event loop, freeing nothing."""
    monkeypatch.setattr(rate_limits, "_FIRST_SWEEP_AT", 100)
    clock = _Clock()
    buckets = _CountingSweeps(per_minute=1, burst=1, clock=clock)
    for number in range(10_000):
        clock.now += 0.001
        buckets.take(f"device-{number}")
    assert buckets.held == 10_000  # none had refilled, so none may be forgotten
    assert buckets.sweeps <= 8  # at 100, 200, 400 ... 6,400 held keys; it was 9,901
    sweeps = buckets.sweeps
    clock.now += 120.0  # every key has refilled; the next sweep, at 12,800 held keys, forgets them
    for number in range(2_801):
        buckets.take(f"later-{number}")
    assert buckets.sweeps == sweeps + 1
    assert buckets.held == 2_801  # the later keys, none refilled yet
