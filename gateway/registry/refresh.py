"""Keeps the gateway's matcher in step with the registry in the store.

Every ``interval`` the refresher asks the store for its registry version; when it
moved, the changed rows come back and become a new matcher (base plus overlay)
that replaces the old one in a single assignment.  A CheckLogin already running
keeps the matcher it started with, so a swap never fails a call.  When the
overlay has grown large, the base is rebuilt from a snapshot in a worker thread
and the changes made meanwhile are laid on top before the swap.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import structlog

from blocklists.entry import Indicator
from blocklists.matcher import Matcher
from gateway.runtime.background import OFF_LOOP_ENTRIES
from gateway.runtime.periodic import cancel, every
from gateway.runtime.wakeup import Wakeup
from gateway.store import Store
from gateway.store.errors import StoreUnavailableError
from signals.evaluate import Knowledge

log = structlog.get_logger(__name__)


async def _with_changes(matcher: Matcher, changes: list[Indicator], version: int) -> Matcher:
    """``matcher`` with ``changes`` laid over it; the overlay's index is rebuilt whole, so a large one is
    built in a worker thread rather than on the loop that answers logins."""
    if matcher.overlay_size + len(changes) > OFF_LOOP_ENTRIES:
        return await asyncio.to_thread(matcher.with_changes, changes, version)
    return matcher.with_changes(changes, version)


class KnowledgeHolder:
    """The one mutable reference to what the brain knows; readers take ``current`` once per call."""

    def __init__(self, knowledge: Knowledge) -> None:
        self.current = knowledge


class BlocklistRefresher:
    def __init__(self, store: Store, holder: KnowledgeHolder, interval: float, rebuild_threshold: int) -> None:
        self._store = store
        self._holder = holder
        self._interval = interval
        self._rebuild_threshold = rebuild_threshold
        self._task: asyncio.Task[None] | None = None
        self._rebuild: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        """Build the full matcher from the store (at start, and when the overlay grew large)."""
        started = time.perf_counter()
        matcher = await self._store.blocklist.load_matcher()
        async with self._lock:
            version, changes = await self._store.blocklist.changes_since(matcher.version)
            if changes:
                matcher = await _with_changes(matcher, changes, version)
            self._swap(matcher)
        log.info(
            "blocklist loaded",
            version=matcher.version,
            entries=matcher.size,
            seconds=round(time.perf_counter() - started, 3),
        )

    def _swap(self, matcher: Matcher) -> None:
        self._holder.current = dataclasses.replace(self._holder.current, blocklist=matcher)

    async def refresh(self) -> bool:
        """Apply what changed since the matcher's version; True when something did.

        More changes than ``rebuild_threshold`` (a large import) are not laid over the matcher: that
        would read and index them all, only for the overlay to be rebuilt into the base at once. The
        base is rebuilt with them instead, and this returns when the new matcher is in force.
        """
        async with self._lock:
            current = self._holder.current.blocklist
            version, changes = await self._store.blocklist.changes_since(current.version, self._rebuild_threshold)
            if version == current.version:
                return False
            if changes is not None:
                matcher = await _with_changes(current, changes, version)
                self._swap(matcher)
        if changes is None:
            if self._holder.current.blocklist.version < version:  # else a rebuild caught up meanwhile
                await self._rebuild_now()
            return True
        log.info("blocklist updated", version=version, changed=len(changes), overlay=matcher.overlay_size)
        return True

    def start(self, wakeup: Wakeup | None = None) -> None:
        """Poll every interval; ``wakeup`` (another replica's NOTIFY) brings a round at once."""
        self._task = asyncio.create_task(
            every(self._interval, self._round, "blocklist refresh", wakeup, expected=(StoreUnavailableError,)),
            name="blocklist-refresh",
        )

    async def stop(self) -> None:
        await cancel(self._task)
        await cancel(self._rebuild)
        self._task = self._rebuild = None

    def _rebuild_if_large(self) -> None:
        """Rebuild in its own task: small changes keep flowing in while a large base is built."""
        if self._holder.current.blocklist.overlay_size > self._rebuild_threshold:
            self._start_rebuild()

    def _start_rebuild(self) -> asyncio.Task[None]:
        """The rebuild under way, or a new one: never two at once."""
        if self._rebuild is None or self._rebuild.done():
            self._rebuild = asyncio.create_task(self.load(), name="blocklist-rebuild")
        return self._rebuild

    async def _rebuild_now(self) -> None:
        """Rebuild (or join the rebuild under way) and wait for it; shielded, so a caller that gives up
        does not cancel the rebuild every other caller relies on."""
        await asyncio.shield(self._start_rebuild())

    async def _round(self) -> None:
        await self.refresh()
        self._rebuild_if_large()
