"""The retention job: each gateway forgets, on a timer, what ``[retention]`` says is too old.

Several replicas may run it at once: every batch re-checks its rows inside its own
transaction, so two purges only share the work.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from gateway.config import Config
from gateway.observability.metrics import Metrics
from gateway.runtime.periodic import cancel, every
from gateway.store import Store
from gateway.store.errors import StoreUnavailableError
from gateway.store.retention import RetentionPolicy

log = structlog.get_logger(__name__)


def retention_policy(config: Config) -> RetentionPolicy:
    """The configured ages; a nonce is kept as long as a replay of its login could still pass the age check."""
    return RetentionPolicy(
        nonce_seconds=float(config.login.max_telemetry_age_seconds + config.limits.max_clock_skew_seconds),
        device_history_days=config.retention.device_history_days,
        verdicts_days=config.retention.verdicts_days,
        commands_days=config.retention.commands_days,
        phone_changes_days=config.retention.phone_changes_days,
    )


class RetentionJob:
    def __init__(
        self, store: Store, policy: RetentionPolicy, interval: float, metrics: Metrics, clock: Callable[[], float]
    ) -> None:
        self._store = store
        self._policy = policy
        self._interval = interval
        self._metrics = metrics
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> dict[str, int]:
        started = time.monotonic()
        removed = await self._store.purge(self._policy, self._clock())
        for table, count in removed.items():
            self._metrics.purged_rows.labels(table).inc(count)
        if any(removed.values()):
            log.info("retention purge", seconds=round(time.monotonic() - started, 3), **removed)
        return removed

    def start(self) -> None:
        self._task = asyncio.create_task(
            every(self._interval, self.run_once, "retention purge", expected=(StoreUnavailableError,))
        )

    async def stop(self) -> None:
        await cancel(self._task)
