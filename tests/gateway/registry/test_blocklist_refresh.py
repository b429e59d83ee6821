"""The refresher keeps the gateway's matcher in step with the store: few changes are laid over it,
many (a large import) rebuild its base, and the heavy work runs where it does not hold the loop."""

from __future__ import annotations

import asyncio
import time

from blocklists.entry import Category, Indicator, KeyType
from gateway.policy.knowledge import load_knowledge
from gateway.registry.importing import import_indicators
from gateway.registry.refresh import BlocklistRefresher, KnowledgeHolder
from gateway.runtime.background import yielding
from gateway.store import Store


def _package(name: str) -> Indicator:
    return Indicator(KeyType.PACKAGE_NAME, name, Category.VOICE_PHISHING, source="refresh-test")


async def test_few_changes_are_laid_over_and_many_rebuild_the_base(store: Store) -> None:
    holder = KnowledgeHolder(load_knowledge())
    refresher = BlocklistRefresher(store, holder, interval=60, rebuild_threshold=50)
    await refresher.load()
    for number in range(3):
        await store.blocklist.add_entry(_package(f"com.few.app{number}"), "test", time.time())
    assert await refresher.refresh()
    assert (holder.current.blocklist.size, holder.current.blocklist.overlay_size) == (3, 3)

    many = [_package(f"com.many.app{number}") for number in range(120)]
    await import_indicators(store, many, actor="test", label="many", now=time.time())
    assert await refresher.refresh()  # returns once the rebuilt matcher is in force
    matcher = holder.current.blocklist
    assert (matcher.size, matcher.overlay_size, matcher.version) == (123, 0, await store.blocklist.version())
    assert not await refresher.refresh()
    await refresher.stop()


async def test_changes_since_says_when_there_are_more_than_asked_for(store: Store) -> None:
    await import_indicators(store, [_package(f"com.c.app{n}") for n in range(5)], actor="t", label="t", now=1.0)
    version = await store.blocklist.version()
    assert await store.blocklist.changes_since(0, at_most=4) == (version, None)
    current, changes = await store.blocklist.changes_since(0, at_most=5)
    assert current == version and changes is not None and len(changes) == 5


async def test_yielding_passes_every_item_in_order_on_the_loop_and_in_a_thread() -> None:
    items = list(range(100))
    assert list(yielding(items, every=7)) == items
    assert await asyncio.to_thread(lambda: list(yielding(items, every=7))) == items


async def test_imports_at_the_same_time_each_apply_all_of_theirs(store: Store) -> None:
    """On SQLite every import stages into the one connection's TEMP table: two at once emptied each
    other's staged rows, and one could merge nothing yet report success."""
    first = [_package(f"com.first.app{number}") for number in range(25_000)]
    second = [_package(f"com.second.app{number}") for number in range(25_000)]
    summaries = await asyncio.gather(
        import_indicators(store, first, actor="feed a", label="a", now=time.time()),
        import_indicators(store, second, actor="feed b", label="b", now=time.time()),
    )
    assert [summary.added for summary in summaries] == [25_000, 25_000]
    assert (await store.blocklist.status(time.time())).active_count == 50_000
