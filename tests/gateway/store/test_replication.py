"""Change notifications between replicas on PostgreSQL, with a real gateway and a second writer.

The gateway's polling is slowed to 30 s, so what it sees within a second came by
NOTIFY, and what it sees after its listening connection was cut came from the
resynchronisation that follows the reconnect (the notification itself was lost).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from blocklists.entry import Category, Indicator, KeyType
from gateway.policy.knowledge import shipped_policy_document
from gateway.server.start import RunningGateway, start_gateway
from gateway.store import Store, open_store
from gateway.store.postgres_database import LISTENER_APPLICATION_NAME
from tests.gateway.conftest import eventually
from tests.helpers import gateway_config


@pytest.fixture
async def slow_polling_gateway(tmp_path: Path, postgres_url: str) -> AsyncIterator[RunningGateway]:
    config = gateway_config(
        tmp_path,
        postgres_url,
        blocklist__refresh_interval_seconds="30",
        signals__policy_refresh_interval_seconds="30",
    )
    running = await start_gateway(config)
    yield running
    await running.stop(grace=1.0)


@pytest.fixture
async def other_replica(tmp_path: Path, postgres_url: str) -> AsyncIterator[Store]:
    store = await open_store(postgres_url, tmp_path)
    yield store
    await store.close()


def _indicator(package: str) -> Indicator:
    return Indicator(KeyType.PACKAGE_NAME, package, Category.VOICE_PHISHING, source="replication-test")


async def test_changes_by_another_replica_arrive_by_notification(
    slow_polling_gateway: RunningGateway, other_replica: Store
) -> None:
    knowledge = slow_polling_gateway.knowledge
    await other_replica.blocklist.add_entry(_indicator("com.notified.one"), "test", time.time())
    await eventually(lambda: knowledge.current.blocklist.version == 1, timeout=1.0, what="blocklist by NOTIFY")
    document = shipped_policy_document().replace("Freeze on", "Notified: freeze on", 1)
    await other_replica.policies.apply(document, actor="test", comment="", at=time.time())
    await eventually(lambda: slow_polling_gateway.policy_refresher.version == 2, timeout=1.0, what="policy by NOTIFY")


async def test_a_lost_listener_reconnects_and_catches_up_on_what_it_missed(
    slow_polling_gateway: RunningGateway, other_replica: Store, postgres_url: str
) -> None:
    knowledge = slow_polling_gateway.knowledge
    admin = await asyncpg.connect(postgres_url)
    try:
        cut = await admin.fetchval(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1 AND datname = current_database()",
            LISTENER_APPLICATION_NAME,
        )
        assert cut == 1
        # Written while nobody listens: its notification is lost for good.
        await other_replica.blocklist.add_entry(_indicator("com.missed.one"), "test", time.time())
        # Heartbeat (2 s) notices, the listener reconnects and refreshes every topic.
        await eventually(lambda: knowledge.current.blocklist.version == 1, timeout=8.0, what="resync")
        listening = await admin.fetchval(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
            LISTENER_APPLICATION_NAME,
        )
        assert listening == 1
    finally:
        await admin.close()
    # And the new connection carries notifications again.
    await other_replica.blocklist.add_entry(_indicator("com.notified.two"), "test", time.time())
    await eventually(lambda: knowledge.current.blocklist.version == 2, timeout=1.0, what="NOTIFY after reconnect")
