"""When to try a failed delivery again: a value, so tests and operators can reason about it."""

from __future__ import annotations

import email.utils
import random
from collections.abc import Callable
from dataclasses import dataclass

# A receiver's Retry-After is obeyed up to an hour: longer would hold a customer's freeze back for too long.
MAX_RETRY_AFTER_SECONDS = 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped; ``max_attempts`` counts the first try."""

    max_attempts: int = 160
    initial_seconds: float = 1.0
    max_seconds: float = 600.0
    # Each delay is drawn between (1 - jitter) and 1 times the exponential step, so
    # deliveries that failed together do not all come back in the same instant.
    jitter: float = 0.5

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts

    def delay(
        self, attempts: int, retry_after: float | None = None, draw: Callable[[], float] = random.random
    ) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt; a receiver's Retry-After wins when longer.

        Retry-After is the receiver's explicit request, so it overrides the backoff cap
        (up to ``MAX_RETRY_AFTER_SECONDS``).
        """
        step = min(self.max_seconds, self.initial_seconds * 2 ** max(0, attempts - 1))
        delay = step * (1 - self.jitter * draw())
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
        return delay


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from now: either delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - now)
