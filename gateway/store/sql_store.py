"""The store on any backend: logins, phone changes and verdicts here; registry, outbox and policy beside it.

``SQLStore`` is written once against the ``Database`` seam; ``open_store`` picks
the backend from the URL (SQLite file or PostgreSQL DSN) and migrates it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from gateway.store.database import ChangeListener, Connection, Database
from gateway.store.guards import GuardStore, claim_nonce, freeze_cap_reached, trip_valve
from gateway.store.outbox import COMMANDS_LOCK, CommandStore
from gateway.store.policies import PolicyStore
from gateway.store.records import (
    HistoryWindows,
    LoginHistory,
    LoginRecord,
    PhoneChangeMatch,
    PhoneChangeRecord,
    RecordedFreeze,
    StoredVerdict,
    VerdictQuery,
    VerdictRow,
)
from gateway.store.registry import BlocklistStore
from gateway.store.retention import DEFAULT_BATCH_SIZE, Progress, RetentionPolicy, count_purgeable, purge
from signals.context import DeviceInventory, PastLocation, PhoneNumberChangeSummary
from signals.inventory import unpack_inventory

_SELECT_VERDICT = "SELECT verdict_id, customer_id, device_id, action, decided_at, response FROM verdicts"
# Every table of ours, in an order that respects foreign keys (copying fills them in this order).
TABLES = (
    "verdicts",
    "customer_devices",
    "login_locations",
    "phone_number_changes",
    "blocklist_state",
    "blocklist_entries",
    "applied_bundles",
    "admin_requests",
    "feed_status",
    "audit_log",
    "commands",
    "command_deliveries",
    "command_attempts",
    "command_endpoints",
    "command_consumers",
    "policy_versions",
    "shadow_firings",
    "device_inventories",
    "login_nonces",
    "safety_valve",
)
# Tables a migration fills with one initial row, which a copy replaces with the source's.
SINGLETON_TABLES = ("blocklist_state", "safety_valve")


class SQLStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.blocklist = BlocklistStore(db)
        self.commands = CommandStore(db)
        self.policies = PolicyStore(db)
        self.guards = GuardStore(db)

    @property
    def backend(self) -> str:
        return self.db.backend

    async def schema_version(self) -> int:
        return await self.db.schema_version()

    async def load_login_history(
        self, customer_id: str, device_id: str, windows: HistoryWindows, request_id: str | None = None
    ) -> LoginHistory:
        """Everything the detectors need of the past, read as one unit (one snapshot, one trip on SQLite).

        With a ``request_id``, the verdict already stored under it comes in the same trip: a separate
        look-up before the history cost every login a second hop to the store's thread.
        """

        async def read(db: Connection) -> LoginHistory:
            earlier = await _find_verdict(db, request_id) if request_id is not None else None
            history = await _read_history(db, customer_id, device_id, windows)
            return history if earlier is None else replace(history, earlier_verdict=earlier)

        return await self.db.run_reads(read)

    async def load_held_apps(self, device_id: str, digest: str) -> bytes | None:
        """The stored form of the list the device sent under ``digest``; None when the store holds
        another digest for it, or none (a retention purge, or a newer login that replaced it)."""
        row = await self.db.fetchone(
            "SELECT apps FROM device_inventories WHERE device_id = ? AND inventory_digest = ? AND apps IS NOT NULL",
            (device_id, digest),
        )
        return bytes(row[0]) if row else None

    async def record_login(self, record: LoginRecord) -> StoredVerdict:
        """The verdict goes in first and claims its request_id: a concurrent retry, in this replica or
        another, finds the key taken (after the first commits), writes nothing and returns the first.

        Then the device's nonce is claimed (NonceReusedError: a replay, which rolls back all).
        """
        locks = (COMMANDS_LOCK,) if record.command is not None else ()
        stored = await self.db.run_in_transaction(lambda tx: self._write_login(tx, record), *locks)
        return await self._stored(record, stored)

    async def record_freeze(self, record: LoginRecord, *, cap: int, held_back: LoginRecord) -> RecordedFreeze:
        """``record``, a FREEZE, if the safety valve lets it through; else ``held_back`` in its place
        and the valve tripped.  One transaction either way, under the commands lock that keeps the
        replicas' counts apart.

        A FREEZE past the cap used to be rolled back, the valve tripped in a transaction of its own
        and the STEP_UP written in a third.  Once the valve was open, every FREEZE login took the
        write lock three times, once through aiosqlite's thread, and the logins behind it waited:
        an open valve made every login slower.
        """

        async def write(tx: Connection) -> tuple[bool, bool, bool]:
            if not await freeze_cap_reached(tx, record.decided_at, cap):
                return await self._write_login(tx, record), False, False
            stored = await self._write_login(tx, held_back)
            return stored, True, stored and await trip_valve(tx, record.decided_at)

        stored, capped, tripped = await self.db.run_in_transaction(write, COMMANDS_LOCK)
        written = held_back if capped else record
        return RecordedFreeze(await self._stored(written, stored), capped and stored, tripped)

    async def _write_login(self, tx: Connection, record: LoginRecord) -> bool:
        stored = await self._insert_login(tx, record)
        if stored and record.nonce:
            await claim_nonce(tx, record.device_id, record.nonce, record.decided_at)
        return stored

    async def _stored(self, record: LoginRecord, stored: bool) -> StoredVerdict:
        """``record`` as stored, or the verdict of the earlier call that holds its request_id."""
        if stored:
            return StoredVerdict(record.verdict_id, record.request_fingerprint, record.response)
        assert record.request_id is not None  # only a request_id can collide
        existing = await _find_verdict(self.db, record.request_id)
        assert existing is not None  # the verdict that holds the key was committed
        return existing

    async def _insert_login(self, tx: Connection, record: LoginRecord) -> bool:
        """Write everything of ``record``; False (and nothing written) when its request_id is taken."""
        claimed = await tx.execute(
            "INSERT INTO verdicts (verdict_id, request_id, request_fingerprint, customer_id, device_id,"
            " action, decided_at, response) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO NOTHING",
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
        if not claimed:
            return False
        await tx.execute(
            "INSERT INTO customer_devices (customer_id, device_id, first_seen_at, last_seen_at, login_count)"
            " VALUES (?, ?, ?, ?, 1)"
            " ON CONFLICT (customer_id, device_id) DO UPDATE SET last_seen_at = CASE"
            " WHEN excluded.last_seen_at > customer_devices.last_seen_at THEN excluded.last_seen_at"
            " ELSE customer_devices.last_seen_at END, login_count = customer_devices.login_count + 1",
            (record.customer_id, record.device_id, record.decided_at, record.decided_at),
        )
        location = record.location
        if location is not None:
            await tx.execute(
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
            await tx.execute(
                "INSERT INTO device_inventories (device_id, observed_at, packages, inventory_digest, apps)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET"
                " observed_at = excluded.observed_at, packages = excluded.packages,"
                " inventory_digest = excluded.inventory_digest, apps = excluded.apps"
                " WHERE excluded.observed_at >= device_inventories.observed_at",
                (record.device_id, record.decided_at, record.inventory, record.held_digest, record.held_apps),
            )
        if record.unchanged_inventory_at is not None:
            await tx.execute(
                "UPDATE device_inventories SET observed_at = ? WHERE device_id = ? AND observed_at = ?"
                " AND observed_at <= ?",
                (record.decided_at, record.device_id, record.unchanged_inventory_at, record.decided_at),
            )
        if record.shadow:
            await tx.executemany(
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
            await self.commands.insert(tx, record.command)
        return True

    async def record_phone_changes(self, changes: Sequence[PhoneChangeRecord]) -> tuple[int, int]:
        """In the logins' shared transactions (``run_in_transaction``), like a login's write."""

        async def write(tx: Connection) -> int:
            accepted = 0
            for change in changes:
                accepted += await tx.execute(
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
            return accepted

        accepted = await self.db.run_in_transaction(write)
        return accepted, len(changes) - accepted

    async def phone_hash_key_use(self) -> dict[str, int]:
        """Stored phone-number changes per hash key id."""
        rows = await self.db.fetch("SELECT hash_key_id, COUNT(*) FROM phone_number_changes GROUP BY hash_key_id")
        return {row[0]: int(row[1]) for row in rows}

    async def find_phone_changes(self, hashes: Mapping[str, str]) -> list[PhoneChangeMatch]:
        """Changes whose previous or new number has one of ``hashes`` (key id -> the number's hash under it)."""
        matches: list[PhoneChangeMatch] = []
        for key_id, number_hash in hashes.items():
            rows = await self.db.fetch(
                "SELECT event_id, customer_id, changed_at, kind, source, previous_number_hash = ?,"
                " new_number_hash = ? FROM phone_number_changes"
                " WHERE hash_key_id = ? AND (previous_number_hash = ? OR new_number_hash = ?)",
                (number_hash, number_hash, key_id, number_hash, number_hash),
            )
            for row in rows:
                side = "both" if row[5] and row[6] else "previous" if row[5] else "new"
                matches.append(PhoneChangeMatch(row[0], row[1], row[2], row[3], row[4], key_id, side))
        return sorted(matches, key=lambda match: match.changed_at)

    async def list_verdicts(self, query: VerdictQuery) -> list[VerdictRow]:
        """A customer's verdicts, newest first, within [since, until)."""
        rows = await self.db.fetch(
            f"{_SELECT_VERDICT} WHERE customer_id = ? AND decided_at >= ? AND decided_at < ?"
            " ORDER BY decided_at DESC LIMIT ?",
            (
                query.customer_id,
                query.since if query.since is not None else float("-inf"),
                query.until if query.until is not None else float("inf"),
                query.limit,
            ),
        )
        return [VerdictRow(r[0], r[1], r[2], r[3], r[4], bytes(r[5])) for r in rows]

    async def get_verdict(self, verdict_id: str) -> VerdictRow | None:
        r = await self.db.fetchone(f"{_SELECT_VERDICT} WHERE verdict_id = ?", (verdict_id,))
        return VerdictRow(r[0], r[1], r[2], r[3], r[4], bytes(r[5])) if r else None

    async def count_rows(self, table: str) -> int:
        """Row count of one of our tables (operators and tests use it to see that nothing was written twice)."""
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}")
        row = await self.db.fetchone(f"SELECT COUNT(*) FROM {table}")
        return int(row[0]) if row else 0

    async def purge(
        self,
        policy: RetentionPolicy,
        now: float,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: Progress | None = None,
    ) -> dict[str, int]:
        return await purge(self.db, policy, now, batch_size=batch_size, progress=progress)

    async def count_purgeable(self, policy: RetentionPolicy, now: float) -> dict[str, int]:
        return await count_purgeable(self.db, policy, now)

    async def listen(self, listener: ChangeListener) -> None:
        await self.db.listen(listener)

    async def close(self) -> None:
        await self.db.close()


async def _find_verdict(db: Connection, request_id: str) -> StoredVerdict | None:
    row = await db.fetchone(
        "SELECT verdict_id, request_fingerprint, response FROM verdicts WHERE request_id = ?", (request_id,)
    )
    return StoredVerdict(row[0], bytes(row[1]), bytes(row[2])) if row else None


async def _read_history(db: Connection, customer_id: str, device_id: str, windows: HistoryWindows) -> LoginHistory:
    rows = await db.fetch("SELECT device_id FROM customer_devices WHERE customer_id = ?", (customer_id,))
    devices = frozenset(row[0] for row in rows)
    row = await db.fetchone(
        "SELECT changed_at, kind, source FROM phone_number_changes"
        " WHERE customer_id = ? AND changed_at >= ? ORDER BY changed_at DESC LIMIT 1",
        (customer_id, windows.phone_changes_since),
    )
    change = PhoneNumberChangeSummary(row[0], row[1], row[2]) if row else None
    rows = await db.fetch(
        "SELECT observed_at, latitude, longitude, COALESCE(accuracy_meters, 0), country_code FROM login_locations"
        " WHERE customer_id = ? AND observed_at >= ? AND latitude IS NOT NULL"
        " ORDER BY observed_at DESC LIMIT ?",
        (customer_id, windows.locations_since, windows.location_limit),
    )
    locations = tuple(PastLocation(*row) for row in rows)
    row = await db.fetchone(
        "SELECT COUNT(*) FROM customer_devices WHERE device_id = ? AND customer_id <> ? AND last_seen_at >= ?",
        (device_id, customer_id, windows.shared_device_since),
    )
    others = int(row[0]) if row else 0
    row = await db.fetchone(
        "SELECT observed_at, packages, inventory_digest FROM device_inventories WHERE device_id = ?", (device_id,)
    )
    names = unpack_inventory(bytes(row[1])) if row else None
    inventory = DeviceInventory(row[0], names) if row and names is not None else None
    held_digest = row[2] if row is not None and inventory is not None else None
    return LoginHistory(devices, change, locations, others, inventory, held_digest)
