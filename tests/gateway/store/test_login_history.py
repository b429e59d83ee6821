"""A login's history and the verdict already stored under its request_id come from the store in one read."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace
from pathlib import Path

from gateway.store import open_store
from gateway.store.records import HistoryWindows, LoginRecord
from signals.inventory import pack_inventory

_WINDOWS = HistoryWindows(phone_changes_since=0.0, locations_since=0.0, location_limit=10, shared_device_since=0.0)


def _record(verdict_id: str, request_id: str | None, device_id: str) -> LoginRecord:
    return LoginRecord(
        verdict_id=verdict_id,
        request_id=request_id,
        request_fingerprint=b"f" * 32,
        customer_id="cust-1",
        device_id=device_id,
        action="ACTION_ALLOW",
        decided_at=1_000.0,
        response=b"answer of " + verdict_id.encode(),
        location=None,
        inventory=pack_inventory(["com.example.bank"]),
    )


async def test_history_brings_the_verdict_stored_under_the_request_id(tmp_path: Path, store_url: str) -> None:
    store = await open_store(store_url, tmp_path)
    try:
        await store.record_login(_record("v_first", "req-1", "dev-1"))
        await store.record_login(_record("v_second", None, "dev-2"))

        retry = await store.load_login_history("cust-1", "dev-1", _WINDOWS, "req-1")
        assert retry.earlier_verdict is not None
        assert retry.earlier_verdict.verdict_id == "v_first"
        assert retry.earlier_verdict.response == b"answer of v_first"
        assert retry.earlier_verdict.request_fingerprint == b"f" * 32
        # The rest of the history is read in the same unit, as for any login.
        assert retry.known_device_ids == {"dev-1", "dev-2"}
        assert retry.previous_inventory is not None
        assert retry.previous_inventory.package_names == {"com.example.bank"}

        fresh = await store.load_login_history("cust-1", "dev-1", _WINDOWS, "req-2")
        assert fresh.earlier_verdict is None
        assert fresh.known_device_ids == retry.known_device_ids
        without_key = await store.load_login_history("cust-1", "dev-1", _WINDOWS)
        assert without_key.earlier_verdict is None
    finally:
        await store.close()


async def test_an_unchanged_app_list_only_moves_its_time_on(tmp_path: Path, store_url: str) -> None:
    store = await open_store(store_url, tmp_path)
    try:
        await store.record_login(_record("v_1", None, "dev-1"))
        same = replace(
            _record("v_2", None, "dev-1"), decided_at=2_000.0, inventory=None, unchanged_inventory_at=1_000.0
        )
        await store.record_login(same)
        history = await store.load_login_history("cust-1", "dev-1", _WINDOWS)
        assert history.previous_inventory is not None
        assert (history.previous_inventory.observed_at, history.previous_inventory.package_names) == (
            2_000.0,
            {"com.example.bank"},
        )
        # A login that read the list before another login moved it on leaves it as the other left it.
        stale = replace(same, verdict_id="v_3", decided_at=3_000.0, nonce="")
        await store.record_login(stale)
        after = await store.load_login_history("cust-1", "dev-1", _WINDOWS)
        assert after.previous_inventory == history.previous_inventory
    finally:
        await store.close()


async def test_sqlite_history_is_read_beside_a_write_in_progress_and_sees_it_once_committed(tmp_path: Path) -> None:
    """The login's reads run on the event loop itself: they must never wait for a writer.

    Another process (here a plain connection, as the CLI's import would hold one) keeps a write
    transaction open; the reads go on at once with the last committed state, and the next read
    after the commit sees the new row: each unit starts a fresh snapshot.
    """
    store = await open_store("", tmp_path)
    other = sqlite3.connect(tmp_path / "mtsg.sqlite3", isolation_level=None)
    try:
        await store.record_login(_record("v_1", None, "dev-1"))
        other.execute("BEGIN IMMEDIATE")
        other.execute(
            "INSERT INTO customer_devices (customer_id, device_id, first_seen_at, last_seen_at, login_count)"
            " VALUES ('cust-1', 'dev-2', 1500.0, 1500.0, 1)"
        )
        started = time.monotonic()
        during = await store.load_login_history("cust-1", "dev-1", _WINDOWS)
        assert time.monotonic() - started < 2.0  # the busy timeout is 5 s: this did not wait on the lock
        assert during.known_device_ids == {"dev-1"}
        other.execute("COMMIT")
        after = await store.load_login_history("cust-1", "dev-1", _WINDOWS)
        assert after.known_device_ids == {"dev-1", "dev-2"}
    finally:
        other.close()
        await store.close()
