"""The registry's SQL on SQLite: entries, versions, imports, bundles, feeds and audit.

Every committed change bumps ``blocklist_state.version`` once and stamps the rows
it touched with that version (``change_seq``); a gateway holding version N reloads
just the rows with ``change_seq > N``.  Imports stage rows in a TEMP table first
(temp tables live outside the main database, so staging a million rows does not
hold the write lock) and merge them in one transaction: all or nothing.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from blocklists.bundle import AppliedBundle, BundleError
from blocklists.entry import Category, Entry, EntrySeverity, Indicator, KeyType
from blocklists.matcher import Matcher
from gateway.store.errors import EntryExistsError, EntryNotFoundError
from gateway.store.records import (
    AuditRecord,
    BlocklistStatus,
    BundleRecord,
    EntryQuery,
    FeedStatus,
    ImportSummary,
)
from gateway.store.sqlite_audit import earlier_request, insert_audit, remember_request

_CONTENT = (
    "category",
    "severity",
    "family",
    "source_reference",
    "confidence",
    "valid_from",
    "valid_until",
    "revoked",
    "revoke_reason",
)
_INDICATOR = ("entry_id", "key_type", "value", "package_name", "source", *_CONTENT)
_HISTORY = ("created_at", "created_by", "modified_at", "modified_by")
_SELECT_ENTRY = f"SELECT {', '.join(_INDICATOR + _HISTORY)} FROM blocklist_entries"
# "the stored row differs from the incoming one" over every content column, NULL-safe.
_DIFFERS = " OR ".join(f"blocklist_entries.{name} IS NOT excluded.{name}" for name in _CONTENT)

WriteTransaction = Callable[[], AbstractAsyncContextManager[None]]


def _indicator_row(indicator: Indicator) -> tuple[Any, ...]:
    return (
        indicator.entry_id,
        indicator.key_type.value,
        indicator.value,
        indicator.package_name,
        indicator.source,
        indicator.category.value,
        indicator.severity.value,
        indicator.family,
        indicator.source_reference,
        indicator.confidence,
        indicator.valid_from,
        indicator.valid_until,
        int(indicator.revoked),
        indicator.revoke_reason,
    )


def _indicator(row: Sequence[Any]) -> Indicator:
    """A stored row back to an Indicator; rows were validated on the way in, so no second validation."""
    return Indicator(
        key_type=KeyType(row[1]),
        value=row[2],
        package_name=row[3],
        source=row[4],
        category=Category(row[5]),
        severity=EntrySeverity(row[6]),
        family=row[7],
        source_reference=row[8],
        confidence=row[9],
        valid_from=row[10],
        valid_until=row[11],
        revoked=bool(row[12]),
        revoke_reason=row[13],
    )


def _entry(row: Sequence[Any]) -> Entry:
    return Entry(_indicator(row), created_at=row[14], created_by=row[15], modified_at=row[16], modified_by=row[17])


def entry_json(entry: Entry | None) -> str | None:
    """The audit trail's before/after form of an entry."""
    if entry is None:
        return None
    indicator = entry.indicator
    record = dict(zip(_INDICATOR, _indicator_row(indicator), strict=True))
    record["revoked"] = indicator.revoked
    return json.dumps(record, sort_keys=True)


def _load_matcher(path: Path) -> Matcher:
    """Build a full matcher from a consistent snapshot, on a private connection (runs in a worker thread)."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN")
        (version,) = connection.execute("SELECT version FROM blocklist_state").fetchone()
        rows = connection.execute(f"{_SELECT_ENTRY} WHERE revoked = 0")
        matcher = Matcher.build((_indicator(row) for row in rows), version)
        connection.execute("COMMIT")
        return matcher
    finally:
        connection.close()


class SQLiteBlocklistStore:
    def __init__(
        self,
        connection: aiosqlite.Connection,
        path: Path,
        write_lock: asyncio.Lock,
        write_transaction: WriteTransaction,
    ) -> None:
        self._db = connection
        self._path = path
        # Staging writes only the TEMP table, but it shares the connection: holding the
        # lock keeps a batch out of another coroutine's open transaction.
        self._write_lock = write_lock
        self._write_transaction = write_transaction

    # --- reading, for the matcher ---------------------------------------------------------

    async def version(self) -> int:
        async with self._db.execute("SELECT version FROM blocklist_state") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def load_matcher(self) -> Matcher:
        return await asyncio.to_thread(_load_matcher, self._path)

    async def changes_since(self, version: int) -> tuple[int, list[Indicator]]:
        """(current version, indicators changed after ``version`` up to it).

        Two statements without a transaction: a row changed again meanwhile carries
        a newer change_seq and is picked up by the next call, never lost.
        """
        current = await self.version()
        if current <= version:
            return current, []
        async with self._db.execute(
            f"{_SELECT_ENTRY} WHERE change_seq > ? AND change_seq <= ?", (version, current)
        ) as cursor:
            rows = await cursor.fetchall()
        return current, [_indicator(row) for row in rows]

    # --- admin reads -------------------------------------------------------------------------

    async def get_entry(self, entry_id: str) -> Entry | None:
        async with self._db.execute(f"{_SELECT_ENTRY} WHERE entry_id = ?", (entry_id,)) as cursor:
            row = await cursor.fetchone()
        return _entry(row) if row else None

    async def list_entries(self, query: EntryQuery) -> tuple[list[Entry], str]:
        """One page and the token of the next ("" on the last page)."""
        clauses, parameters = ["entry_id > ?"], [query.after]
        for column in ("category", "source", "key_type"):
            if getattr(query, column):
                clauses.append(f"{column} = ?")
                parameters.append(getattr(query, column))
        if query.text:
            pattern = "%" + query.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            clauses.append("(value LIKE ? ESCAPE '\\' OR package_name LIKE ? ESCAPE '\\' OR family LIKE ? ESCAPE '\\')")
            parameters += [pattern] * 3
        if not query.include_revoked:
            clauses.append("revoked = 0")
        sql = f"{_SELECT_ENTRY} WHERE {' AND '.join(clauses)} ORDER BY entry_id LIMIT ?"
        async with self._db.execute(sql, (*parameters, query.page_size + 1)) as cursor:
            rows = await cursor.fetchall()
        entries = [_entry(row) for row in rows[: query.page_size]]
        return entries, entries[-1].entry_id if len(rows) > query.page_size else ""

    async def iter_entries(self, include_revoked: bool, batch: int = 5000) -> AsyncIterator[Entry]:
        """Every entry in id order, fetched in batches (exports)."""
        after = ""
        while True:
            page, after = await self.list_entries(
                EntryQuery(page_size=batch, after=after, include_revoked=include_revoked)
            )
            for entry in page:
                yield entry
            if not after:
                return

    async def status(self, now: float) -> BlocklistStatus:
        active = "revoked = 0 AND (valid_from IS NULL OR valid_from <= ?) AND (valid_until IS NULL OR valid_until > ?)"
        counts: dict[str, list[tuple[str, int]]] = {}
        for column in ("category", "source"):
            async with self._db.execute(
                f"SELECT {column}, COUNT(*) FROM blocklist_entries WHERE {active} GROUP BY {column} ORDER BY {column}",
                (now, now),
            ) as cursor:
                counts[column] = [(row[0], int(row[1])) for row in await cursor.fetchall()]
        async with self._db.execute("SELECT version, last_import_at FROM blocklist_state") as cursor:
            state = await cursor.fetchone()
        assert state is not None  # the migration inserts the one row
        return BlocklistStatus(
            version=int(state[0]),
            active_count=sum(count for _, count in counts["category"]),
            by_category=tuple(counts["category"]),
            by_source=tuple(counts["source"]),
            last_import_at=state[1],
        )

    async def applied_bundle(self, publisher: str) -> AppliedBundle | None:
        async with self._db.execute(
            "SELECT bundle_version, entries_sha256 FROM applied_bundles WHERE publisher = ?", (publisher,)
        ) as cursor:
            row = await cursor.fetchone()
        return AppliedBundle(int(row[0]), row[1]) if row else None

    async def audit_list(self, limit: int, target: str = "", before_id: int = 0) -> list[AuditRecord]:
        """Newest first; ``before_id`` pages further back."""
        clauses, parameters = ["1 = 1"], []
        if target:
            clauses.append("target = ?")
            parameters.append(target)
        if before_id:
            clauses.append("audit_id < ?")
            parameters.append(before_id)
        async with self._db.execute(
            "SELECT audit_id, at, actor, action, target, before_json, after_json, detail FROM audit_log"
            f" WHERE {' AND '.join(clauses)} ORDER BY audit_id DESC LIMIT ?",
            (*parameters, limit),
        ) as cursor:
            return [AuditRecord(*row) for row in await cursor.fetchall()]

    # --- admin writes ------------------------------------------------------------------------

    async def _next_version(self) -> int:
        async with self._db.execute("SELECT version FROM blocklist_state") as cursor:
            row = await cursor.fetchone()
        version = (int(row[0]) if row else 0) + 1
        await self._db.execute("UPDATE blocklist_state SET version = ?", (version,))
        return version

    async def _audit(
        self, now: float, actor: str, action: str, target: str, before: Entry | None, after: Entry | None, detail: str
    ) -> None:
        await insert_audit(
            self._db,
            at=now,
            actor=actor,
            action=action,
            target=target,
            before_json=entry_json(before),
            after_json=entry_json(after),
            detail=detail,
        )

    async def _replayed(self, request_id: str, operation: str, fingerprint: bytes) -> Entry | None:
        """The entry an earlier identical request produced; refuses the key reused for something else."""
        entry_id = await earlier_request(self._db, request_id, operation, fingerprint)
        return await self.get_entry(entry_id) if entry_id is not None else None

    async def _write_entry(self, indicator: Indicator, existing: Entry | None, actor: str, now: float) -> Entry:
        version = await self._next_version()
        created_at, created_by = (existing.created_at, existing.created_by) if existing else (now, actor)
        values = (*_indicator_row(indicator), created_at, created_by, now, actor, version)
        columns = (*_INDICATOR, *_HISTORY, "change_seq")
        await self._db.execute(
            f"INSERT OR REPLACE INTO blocklist_entries ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            values,
        )
        return Entry(indicator, created_at, created_by, now, actor)

    async def add_entry(
        self, indicator: Indicator, actor: str, now: float, request_id: str = "", fingerprint: bytes = b""
    ) -> Entry:
        """Add, or list again an entry that was revoked; an active duplicate raises EntryExistsError."""
        async with self._write_transaction():
            if request_id:
                replayed = await self._replayed(request_id, "add", fingerprint)
                if replayed is not None:
                    return replayed
            existing = await self.get_entry(indicator.entry_id)
            if existing is not None and not existing.indicator.revoked:
                raise EntryExistsError(existing.entry_id)
            entry = await self._write_entry(indicator, existing, actor, now)
            await self._audit(now, actor, "relist" if existing else "add", entry.entry_id, existing, entry, "")
            if request_id:
                await remember_request(self._db, request_id, "add", fingerprint, entry.entry_id, now)
            return entry

    async def revoke_entry(
        self, entry_id: str, reason: str, actor: str, now: float, request_id: str = "", fingerprint: bytes = b""
    ) -> Entry:
        """Revoke with a reason; revoking a revoked entry changes nothing and returns it."""
        async with self._write_transaction():
            if request_id:
                replayed = await self._replayed(request_id, "revoke", fingerprint)
                if replayed is not None:
                    return replayed
            existing = await self.get_entry(entry_id)
            if existing is None:
                raise EntryNotFoundError(entry_id)
            if existing.indicator.revoked:
                return existing
            entry = await self._write_entry(existing.indicator.revoke(reason), existing, actor, now)
            await self._audit(now, actor, "revoke", entry_id, existing, entry, reason)
            if request_id:
                await remember_request(self._db, request_id, "revoke", fingerprint, entry_id, now)
            return entry

    @asynccontextmanager
    async def importing(
        self, *, actor: str, label: str, now: float, bundle: BundleRecord | None = None
    ) -> AsyncIterator[BlocklistImport]:
        """Stage with ``stage()`` inside the block; leaving it without error merges everything at once."""
        async with self._write_lock:
            await self._db.execute(
                "CREATE TEMP TABLE IF NOT EXISTS staged_entries ("
                + ", ".join(f"{name} {'PRIMARY KEY' if name == 'entry_id' else ''}" for name in _INDICATOR)
                + ")"
            )
            await self._db.execute("DELETE FROM temp.staged_entries")
        session = BlocklistImport(self._db, self._write_lock)
        try:
            yield session
            async with self._write_transaction():
                session.summary = await self._merge(session.received, actor, label, now, bundle)
        finally:
            async with self._write_lock:
                await self._db.execute("DELETE FROM temp.staged_entries")

    async def _merge(
        self, received: int, actor: str, label: str, now: float, bundle: BundleRecord | None
    ) -> ImportSummary:
        if bundle is not None:
            previous = await self.applied_bundle(bundle.publisher)
            if previous is not None and previous.bundle_version >= bundle.bundle_version:
                raise BundleError(
                    f"bundle version {previous.bundle_version} of {bundle.publisher} was applied meanwhile;"
                    f" refusing version {bundle.bundle_version}"
                )
        incoming_revokes = "s.revoked = 1 AND e.revoked = 0"
        differs = " OR ".join(f"e.{name} IS NOT s.{name}" for name in _CONTENT)
        async with self._db.execute(
            "SELECT COUNT(*),"
            " COALESCE(SUM(e.entry_id IS NULL), 0),"
            f" COALESCE(SUM(e.entry_id IS NOT NULL AND {incoming_revokes}), 0),"
            f" COALESCE(SUM(e.entry_id IS NOT NULL AND NOT ({incoming_revokes}) AND ({differs})), 0)"
            " FROM temp.staged_entries s LEFT JOIN blocklist_entries e ON e.entry_id = s.entry_id"
        ) as cursor:
            row = await cursor.fetchone()
        assert row is not None
        distinct, added, revoked, updated = (int(value) for value in row)
        changed = added + revoked + updated
        if changed:
            version = await self._next_version()
            columns = ", ".join(_INDICATOR)
            updates = ", ".join(f"{name} = excluded.{name}" for name in (*_CONTENT, "modified_at", "modified_by"))
            await self._db.execute(
                f"INSERT INTO blocklist_entries ({columns}, created_at, created_by, modified_at, modified_by,"
                f" change_seq) SELECT {columns}, ?, ?, ?, ?, ? FROM temp.staged_entries WHERE true"
                f" ON CONFLICT (entry_id) DO UPDATE SET {updates}, change_seq = excluded.change_seq WHERE {_DIFFERS}",
                (now, actor, now, actor, version),
            )
        else:
            version = await self.version()
        await self._db.execute("UPDATE blocklist_state SET last_import_at = ?", (now,))
        if bundle is not None:
            await self._db.execute(
                "INSERT INTO applied_bundles (publisher, bundle_version, entries_sha256, key_id, applied_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (publisher) DO UPDATE SET bundle_version ="
                " excluded.bundle_version, entries_sha256 = excluded.entries_sha256, key_id = excluded.key_id,"
                " applied_at = excluded.applied_at",
                (bundle.publisher, bundle.bundle_version, bundle.entries_sha256, bundle.key_id, now),
            )
        summary = ImportSummary(
            version=version,
            received=received,
            added=added,
            updated=updated,
            revoked=revoked,
            unchanged=distinct - changed,
            duplicates=received - distinct,
        )
        detail = {key: getattr(summary, key) for key in ImportSummary.__slots__}
        if bundle is not None:
            detail.update(publisher=bundle.publisher, bundle_version=bundle.bundle_version, key_id=bundle.key_id)
        await self._audit(now, actor, "import", label, None, None, json.dumps(detail, sort_keys=True))
        return summary

    # --- feeds -----------------------------------------------------------------------------

    async def record_feed_attempt(self, status: FeedStatus) -> None:
        async with self._write_transaction():
            await self._db.execute(
                "INSERT INTO feed_status (url, last_attempt_at, last_success_at, last_error, etag, bundle_version)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (url) DO UPDATE SET last_attempt_at = excluded.last_attempt_at,"
                " last_success_at = COALESCE(excluded.last_success_at, feed_status.last_success_at),"
                " last_error = excluded.last_error, etag = excluded.etag,"
                " bundle_version = COALESCE(excluded.bundle_version, feed_status.bundle_version)",
                (
                    status.url,
                    status.last_attempt_at,
                    status.last_success_at,
                    status.last_error,
                    status.etag,
                    status.bundle_version,
                ),
            )

    async def feed_statuses(self) -> list[FeedStatus]:
        async with self._db.execute(
            "SELECT url, last_attempt_at, last_success_at, last_error, etag, bundle_version FROM feed_status"
            " ORDER BY url"
        ) as cursor:
            return [FeedStatus(*row) for row in await cursor.fetchall()]


class BlocklistImport:
    """An import being staged; ``summary`` is set once the merge committed."""

    def __init__(self, connection: aiosqlite.Connection, write_lock: asyncio.Lock) -> None:
        self._db = connection
        self._write_lock = write_lock
        self.received = 0
        self.summary: ImportSummary | None = None

    async def stage(self, indicators: Sequence[Indicator]) -> None:
        """Add a batch; a later row with the same entry_id replaces an earlier one (the feed's last word wins)."""
        async with self._write_lock:
            await self._db.executemany(
                f"INSERT OR REPLACE INTO temp.staged_entries ({', '.join(_INDICATOR)})"
                f" VALUES ({', '.join('?' * len(_INDICATOR))})",
                _rows(indicators),
            )
        self.received += len(indicators)


def _rows(indicators: Sequence[Indicator]) -> Iterator[tuple[Any, ...]]:
    return (_indicator_row(indicator) for indicator in indicators)
