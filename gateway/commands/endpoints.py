"""Where the installation pushes commands: each gateway's endpoints, known to every process through the store.

A command is queued for every endpoint the installation's gateways push to, whichever
process made it: a gateway deciding a FREEZE, or `mtsg commands unfreeze` run by the
security team on a host that has none of the gateways' push settings. Each serving
gateway announces its configured endpoints in the store at start and then regularly;
an endpoint no gateway has announced for ``ANNOUNCED_WITHIN_SECONDS`` is taken to be
gone from the configuration and gets no new commands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from gateway.runtime.periodic import cancel, every
from gateway.store import Store
from gateway.store.errors import StoreUnavailableError

# How often a serving gateway says again which endpoints it pushes to.
ANNOUNCE_INTERVAL_SECONDS = 300.0
# An endpoint announced within this long is still pushed to; a day covers a gateway stopped overnight.
ANNOUNCED_WITHIN_SECONDS = 86400.0


def merged(configured: Sequence[str], announced: Sequence[str]) -> tuple[str, ...]:
    """This process's endpoints first, in their configured order, then the others' by name."""
    return (*configured, *sorted(set(announced) - set(configured)))


async def installation_endpoints(store: Store, configured: Sequence[str], now: float) -> tuple[str, ...]:
    """Every endpoint a command made now must reach: ``configured`` and those the gateways announced."""
    return merged(configured, await store.commands.pushed_endpoints(now - ANNOUNCED_WITHIN_SECONDS))


class PushEndpoints:
    """A serving gateway's view of the installation's endpoints, announced and refreshed in the background."""

    def __init__(self, store: Store, configured: Sequence[str], clock: Callable[[], float]) -> None:
        self._store = store
        self._configured = tuple(configured)
        self._clock = clock
        self.current: tuple[str, ...] = self._configured
        self._task: asyncio.Task[None] | None = None

    async def announce(self) -> None:
        """Say which endpoints this gateway pushes to, and learn the others'."""
        now = self._clock()
        await self._store.commands.announce_endpoints(self._configured, now)
        self.current = await installation_endpoints(self._store, self._configured, now)

    def start(self) -> None:
        self._task = asyncio.create_task(
            every(
                ANNOUNCE_INTERVAL_SECONDS,
                self.announce,
                "push endpoint announcement",
                expected=(StoreUnavailableError,),
            ),
            name="push-endpoints",
        )

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
