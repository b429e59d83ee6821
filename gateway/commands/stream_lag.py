"""How far the slowest stream consumer is behind, as a gauge every replica keeps up to date.

A bank that takes its commands from CommandFeedService rather than from the push has no delivery
to fail: when its consumer stops reading, FREEZE commands wait in the outbox and nothing counts
them.  A consumer that is gone for good (a decommissioned system, a test's id) looks the same, and
also keeps every command from retention.  Both show here as an age that keeps growing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gateway.observability.metrics import Metrics
from gateway.runtime.periodic import cancel, every
from gateway.store import Store
from gateway.store.errors import StoreUnavailableError

# A query on the commands' primary key: cheap enough for every replica to run this often.
INTERVAL_SECONDS = 10.0


class StreamLagGauge:
    """Keeps ``mtsg_command_stream_unacknowledged_seconds`` at the age of the oldest unacknowledged command."""

    def __init__(
        self, store: Store, metrics: Metrics, clock: Callable[[], float], interval: float = INTERVAL_SECONDS
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def report(self) -> float:
        """Read the store and set the gauge; returns the age set (0 when every consumer is caught up)."""
        oldest = await self._store.commands.oldest_unacknowledged()
        age = 0.0 if oldest is None else max(0.0, self._clock() - oldest)
        self._metrics.command_stream_unacknowledged.set(age)
        return age

    def start(self) -> None:
        self._task = asyncio.create_task(
            every(self._interval, self.report, "stream consumer lag report", expected=(StoreUnavailableError,)),
            name="stream-lag",
        )

    async def stop(self) -> None:
        await cancel(self._task)
