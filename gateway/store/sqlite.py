"""SQLite backend (aiosqlite, WAL): the embedded default for a single gateway process.

One connection serves the process.  aiosqlite runs its statements on one thread,
but coroutines can interleave between awaits, so every write transaction holds
``_write_lock``: without it two logins could share one BEGIN..COMMIT.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite
import structlog

from gateway.store.errors import StoreUnavailableError
from gateway.store.migrate import load_migrations
from gateway.store.records import (
    HistoryWindows,
    LoginHistory,
    LoginRecord,
    PhoneChangeRecord,
    StoredVerdict,
    VerdictQuery,
    VerdictRow,
)
from gateway.store.sqlite_blocklist import SQLiteBlocklistStore
from gateway.store.sqlite_commands import SQLiteCommandStore
from gateway.store.sqlite_policies import SQLitePolicyStore
from signals.context import DeviceInventory, PastLocation, PhoneNumberChangeSummary
from signals.inventory import unpack_inventory

log = structlog.get_logger(__name__)
_SELECT_VERDICT = "SELECT verdict_id, customer_id, device_id, action, decided_at, response FROM verdicts"


class SQLiteStore:
    def __init__(self, connection: aiosqlite.Connection, path: Path) -> None:
        self._db = connection
        self._path = path
        self._write_lock = asyncio.Lock()
        self.blocklist = SQLiteBlocklistStore(connection, path, self._write_lock, self._write_transaction)
        self.commands = SQLiteCommandStore(connection, self._write_transaction)
        self.policies = SQLitePolicyStore(connection, self._write_transaction)

    @classmethod
    async def open(cls, path: Path) -> SQLiteStore:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as error:
            raise StoreUnavailableError(f"cannot open SQLite database {path}: {error}") from error
        store = cls(connection, path)
        try:
            await connection.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed verdict survives power loss, not only a process crash.
            await connection.execute("PRAGMA synchronous=FULL")
            await connection.execute("PRAGMA foreign_keys=ON")
            await connection.execute("PRAGMA busy_timeout=5000")
            await store._migrate()
        except sqlite3.Error as error:
            await connection.close()
            raise StoreUnavailableError(f"cannot use SQLite database {path}: {error}") from error
        except BaseException:
            await connection.close()
            raise
        return store

    async def _migrate(self) -> None:
        await self._db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        async with self._db.execute("SELECT version FROM schema_migrations") as cursor:
            applied = {row[0] for row in await cursor.fetchall()}
        for migration in load_migrations("sqlite"):
            if migration.version in applied:
                continue
            log.info("applying schema migration", version=migration.version, name=migration.name, db=str(self._path))
            script = (
                "BEGIN IMMEDIATE;\n"
                f"{migration.sql}\n"
                "INSERT INTO schema_migrations (version, name, applied_at) "
                f"VALUES ({migration.version}, '{migration.name}', {time.time()});\n"
                "COMMIT;"
            )
            try:
                await self._db.executescript(script)
            except sqlite3.Error:
                if self._db.in_transaction:
                    await self._db.rollback()
                raise

    async def schema_version(self) -> int:
        async with self._db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def find_verdict(self, request_id: str) -> StoredVerdict | None:
        try:
            return await self._select_verdict(request_id)
        except sqlite3.Error as error:
            raise StoreUnavailableError(str(error)) from error

    async def _select_verdict(self, request_id: str) -> StoredVerdict | None:
        async with self._db.execute(
            "SELECT verdict_id, request_fingerprint, response FROM verdicts WHERE request_id = ?",
            (request_id,),
        ) as cursor:
            row = await cursor.fetchone()
        return StoredVerdict(row[0], bytes(row[1]), bytes(row[2])) if row else None

    async def load_login_history(self, customer_id: str, device_id: str, windows: HistoryWindows) -> LoginHistory:
        try:
            return await self._select_history(customer_id, device_id, windows)
        except sqlite3.Error as error:
            raise StoreUnavailableError(str(error)) from error

    async def _select_history(self, customer_id: str, device_id: str, windows: HistoryWindows) -> LoginHistory:
        async with self._db.execute(
            "SELECT device_id FROM customer_devices WHERE customer_id = ?", (customer_id,)
        ) as cursor:
            devices = frozenset(row[0] for row in await cursor.fetchall())
        async with self._db.execute(
            "SELECT changed_at, kind, source FROM phone_number_changes"
            " WHERE customer_id = ? AND changed_at >= ? ORDER BY changed_at DESC LIMIT 1",
            (customer_id, windows.phone_changes_since),
        ) as cursor:
            row = await cursor.fetchone()
        change = PhoneNumberChangeSummary(row[0], row[1], row[2]) if row else None
        async with self._db.execute(
            "SELECT observed_at, latitude, longitude, COALESCE(accuracy_meters, 0), country_code FROM login_locations"
            " WHERE customer_id = ? AND observed_at >= ? AND latitude IS NOT NULL"
            " ORDER BY observed_at DESC LIMIT ?",
            (customer_id, windows.locations_since, windows.location_limit),
        ) as cursor:
            locations = tuple(PastLocation(*row) for row in await cursor.fetchall())
        async with self._db.execute(
            "SELECT COUNT(*) FROM customer_devices WHERE device_id = ? AND customer_id <> ? AND last_seen_at >= ?",
            (device_id, customer_id, windows.shared_device_since),
        ) as cursor:
            row = await cursor.fetchone()
        others = int(row[0]) if row else 0
        async with self._db.execute(
            "SELECT observed_at, packages FROM device_inventories WHERE device_id = ?", (device_id,)
        ) as cursor:
            row = await cursor.fetchone()
        names = unpack_inventory(bytes(row[1])) if row else None
        inventory = DeviceInventory(row[0], names) if row and names is not None else None
        return LoginHistory(devices, change, locations, others, inventory)

    @asynccontextmanager
    async def _write_transaction(self) -> AsyncIterator[None]:
        """BEGIN IMMEDIATE .. COMMIT under the write lock; rolled back on any error."""
        async with self._write_lock:
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield
                    if self._db.in_transaction:
                        await self._db.commit()
                except BaseException:
                    if self._db.in_transaction:
                        await self._db.rollback()
                    raise
            except sqlite3.Error as error:
                raise StoreUnavailableError(str(error)) from error

    async def record_login(self, record: LoginRecord) -> StoredVerdict:
        async with self._write_transaction():
            existing = await self._select_verdict(record.request_id) if record.request_id else None
            if existing is not None:
                await self._db.rollback()
                return existing
            await self._insert_login(record)
        return StoredVerdict(record.verdict_id, record.request_fingerprint, record.response)

    async def _insert_login(self, record: LoginRecord) -> None:
        await self._db.execute(
            "INSERT INTO verdicts (verdict_id, request_id, request_fingerprint, customer_id, device_id,"
            " action, decided_at, response) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.verdict_id,
                record.request_id,
                record.request_fingerprint,
                record.customer_id,
                record.device_id,
                record.action,
                record.decided_at,
                record.response,
            ),
        )
        await self._db.execute(
            "INSERT INTO customer_devices (customer_id, device_id, first_seen_at, last_seen_at, login_count)"
            " VALUES (?, ?, ?, ?, 1)"
            " ON CONFLICT (customer_id, device_id) DO UPDATE SET"
            " last_seen_at = MAX(last_seen_at, excluded.last_seen_at), login_count = login_count + 1",
            (record.customer_id, record.device_id, record.decided_at, record.decided_at),
        )
        location = record.location
        if location is not None:
            await self._db.execute(
                "INSERT INTO login_locations (customer_id, device_id, verdict_id, observed_at, latitude,"
                " longitude, accuracy_meters, source, client_ip, country_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.customer_id,
                    record.device_id,
                    record.verdict_id,
                    record.decided_at,
                    location.latitude,
                    location.longitude,
                    location.accuracy_meters,
                    location.source,
                    location.client_ip,
                    location.country_code,
                ),
            )
        if record.inventory is not None:
            await self._db.execute(
                "INSERT INTO device_inventories (device_id, observed_at, packages) VALUES (?, ?, ?)"
                " ON CONFLICT (device_id) DO UPDATE SET"
                " observed_at = excluded.observed_at, packages = excluded.packages"
                " WHERE excluded.observed_at >= device_inventories.observed_at",
                (record.device_id, record.decided_at, record.inventory),
            )
        if record.shadow:
            await self._db.executemany(
                "INSERT INTO shadow_firings (verdict_id, customer_id, decided_at, policy_version, scenario_id,"
                " would_action, actual_action) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        record.verdict_id,
                        record.customer_id,
                        record.decided_at,
                        record.policy_version,
                        firing.scenario_id,
                        firing.would_action,
                        record.action,
                    )
                    for firing in record.shadow
                ],
            )
        if record.command is not None:
            await self.commands.insert(record.command)

    async def record_phone_changes(self, changes: Sequence[PhoneChangeRecord]) -> tuple[int, int]:
        accepted = 0
        async with self._write_transaction():
            for change in changes:
                cursor = await self._db.execute(
                    "INSERT INTO phone_number_changes (event_id, customer_id, previous_number_hash,"
                    " new_number_hash, hash_key_id, changed_at, kind, source, received_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
                    (
                        change.event_id,
                        change.customer_id,
                        change.previous_number_hash,
                        change.new_number_hash,
                        change.hash_key_id,
                        change.changed_at,
                        change.kind,
                        change.source,
                        change.received_at,
                    ),
                )
                accepted += cursor.rowcount
        return accepted, len(changes) - accepted

    async def list_verdicts(self, query: VerdictQuery) -> list[VerdictRow]:
        """A customer's verdicts, newest first, within [since, until)."""
        async with self._db.execute(
            f"{_SELECT_VERDICT} WHERE customer_id = ? AND decided_at >= ? AND decided_at < ?"
            " ORDER BY decided_at DESC LIMIT ?",
            (
                query.customer_id,
                query.since if query.since is not None else float("-inf"),
                query.until if query.until is not None else float("inf"),
                query.limit,
            ),
        ) as cursor:
            return [VerdictRow(r[0], r[1], r[2], r[3], r[4], bytes(r[5])) for r in await cursor.fetchall()]

    async def get_verdict(self, verdict_id: str) -> VerdictRow | None:
        async with self._db.execute(f"{_SELECT_VERDICT} WHERE verdict_id = ?", (verdict_id,)) as cursor:
            r = await cursor.fetchone()
        return VerdictRow(r[0], r[1], r[2], r[3], r[4], bytes(r[5])) if r else None

    async def count_rows(self, table: str) -> int:
        """Row count of one of our tables (operators and tests use it to see that nothing was written twice)."""
        if table not in {
            "verdicts",
            "customer_devices",
            "login_locations",
            "phone_number_changes",
            "blocklist_entries",
            "audit_log",
            "commands",
            "command_deliveries",
            "command_attempts",
            "policy_versions",
            "shadow_firings",
            "device_inventories",
        }:
            raise ValueError(f"unknown table {table!r}")
        async with self._db.execute(f"SELECT COUNT(*) FROM {table}") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def close(self) -> None:
        await self._db.close()
