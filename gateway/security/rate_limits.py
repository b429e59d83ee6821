"""Token buckets per key (device, customer) and a limit on calls in flight.

Both answer "no" at once rather than queue: a flood of logins from one device (a
script replaying telemetry, a stuck app retrying in a loop) must not slow down the
other customers, and a gateway past its capacity must shed load, not pile up calls
that will miss their deadlines anyway.  grpc's own ``maximum_concurrent_rpcs`` is not
used: on grpc.aio it has had bugs (calls stuck after cancellation), and it cannot
give the client a retry hint.

Limits hold per gateway process: N replicas allow N times the rate.  docs/SECURITY.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from gateway.errors import abort_with, resource_exhausted
from gateway.generated.mtsg.v1.error_reason_pb2 import ERROR_REASON_TOO_MANY_CALLS, ErrorReason
from gateway.observability.metrics import Metrics

# Buckets are forgotten once full (idle). The first sweep runs when this many keys are held; each sweep then
# waits until the held keys have doubled, so that a sweep which frees little (many keys used within one refill
# time, as at a low configured rate) is not repeated for every new key.
_FIRST_SWEEP_AT = 100_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """One bucket per key: ``burst`` tokens, refilled at ``per_minute`` a minute."""

    def __init__(self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._sweep_at = _FIRST_SWEEP_AT

    def _refilled(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._sweep_at:
                self._sweep(now)
            bucket = self._buckets[key] = _Bucket(self._burst, now)
        else:
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
            bucket.updated = now
        return bucket

    def wait_for(self, key: str) -> float:
        """Seconds until ``key`` has a token (0 when it has one now); takes nothing."""
        bucket = self._refilled(key, self._clock())
        return 0.0 if bucket.tokens >= 1.0 else (1.0 - bucket.tokens) / self._rate

    def take(self, key: str) -> None:
        self._refilled(key, self._clock()).tokens -= 1.0

    def _sweep(self, now: float) -> None:
        full = [
            key
            for key, bucket in self._buckets.items()
            if bucket.tokens + (now - bucket.updated) * self._rate >= self._burst
        ]
        for key in full:
            del self._buckets[key]
        self._sweep_at = max(_FIRST_SWEEP_AT, 2 * len(self._buckets))

    @property
    def held(self) -> int:
        """How many keys have a bucket now (full ones included until the next sweep)."""
        return len(self._buckets)


@dataclass(frozen=True)
class Refusal:
    """How a concurrency limit says no: the ``limit`` label it counts under, the reason, and when to retry."""

    label: str
    reason: ErrorReason
    message: str  # formatted with {limit}
    retry_after_seconds: float


CALLS_REFUSAL = Refusal(
    "in_flight", ERROR_REASON_TOO_MANY_CALLS, "the gateway is handling {limit} calls already; retry shortly", 0.05
)


def answers_once(exempt: frozenset[str]) -> Callable[[str], bool]:
    """Which methods the calls limit counts: not long-lived streams, which would hold slots for hours,
    and not health checks, which must be answered even when the gateway is saturated."""
    return lambda method: method not in exempt and not method.startswith("/grpc.health.")


class InFlightLimit:
    """A guard for the interceptor: at most ``limit`` of the calls it ``counts`` at once; the rest are refused
    with RESOURCE_EXHAUSTED at once."""

    def __init__(
        self, limit: int, metrics: Metrics, counts: Callable[[str], bool], refusal: Refusal = CALLS_REFUSAL
    ) -> None:
        self._limit = limit
        self._metrics = metrics
        self._counts = counts
        self._refusal = refusal
        self.in_flight = 0

    async def admit(self, method: str, context: grpc.aio.ServicerContext) -> Callable[[], None] | None:
        """A guard of the interceptor: refuses the call when ``limit`` are in flight, else counts it until it ends."""
        if not self._counts(method):
            return None
        if self.in_flight >= self._limit:
            refusal = self._refusal
            self._metrics.rate_limited.labels(limit=refusal.label).inc()
            await abort_with(
                context,
                resource_exhausted(
                    refusal.message.format(limit=self._limit), refusal.reason, refusal.retry_after_seconds
                ),
            )
        self.in_flight += 1
        return self._release

    def _release(self) -> None:
        self.in_flight -= 1
