"""The registry's SQL, on any backend: entries, versions, imports, bundles, feeds and audit.

Every committed change bumps ``blocklist_state.version`` once and stamps the rows
it touched with that version (``change_seq``); a gateway holding version N reloads
just the rows with ``change_seq > N``.  Registry writes hold the "blocklist" lock
until they commit, so versions become visible in the order they were given out.
Imports stage rows in a TEMP table on one held connection first (staging a
million rows does not block anyone) and merge them in one transaction: all or
nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from blocklists.bundle import AppliedBundle, BundleError
from blocklists.entry import Category, Entry, EntrySeverity, Indicator, KeyType
from blocklists.matcher import Matcher
from gateway.runtime.background import OFF_LOOP_ENTRIES, yielding
from gateway.store.audit import earlier_request, insert_audit, remember_request
from gateway.store.database import Connection, Database
from gateway.store.errors import BundleAppliedMeanwhileError, EntryExistsError, EntryNotFoundError
from gateway.store.records import (
    AuditRecord,
    BlocklistStatus,
    BundleRecord,
    EntryQuery,
    FeedStatus,
    ImportSummary,
)

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
_DIFFERS = " OR ".join(f"blocklist_entries.{name} IS DISTINCT FROM excluded.{name}" for name in _CONTENT)
_UPSERT_ENTRY = (
    f"INSERT INTO blocklist_entries ({', '.join((*_INDICATOR, *_HISTORY, 'change_seq'))})"
    f" VALUES ({', '.join('?' * (len(_INDICATOR) + len(_HISTORY) + 1))})"
    " ON CONFLICT (entry_id) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in (*_INDICATOR[1:], *_HISTORY, "change_seq"))
)
_STAGE_ENTRY = (
    f"INSERT INTO staged_entries ({', '.join(_INDICATOR)}) VALUES ({', '.join('?' * len(_INDICATOR))})"
    " ON CONFLICT (entry_id) DO UPDATE SET " + ", ".join(f"{name} = excluded.{name}" for name in _INDICATOR[1:])
)
REGISTRY_LOCK = "blocklist"
# Rows per round trip while a matcher is built from a snapshot.
_MATCHER_PAGE = 20_000


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


def _indicators(rows: Sequence[Sequence[Any]]) -> list[Indicator]:
    return [_indicator(row) for row in yielding(rows)]


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


class BlocklistStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- reading, for the matcher ---------------------------------------------------------

    async def version(self) -> int:
        row = await self._db.fetchone("SELECT version FROM blocklist_state")
        return int(row[0]) if row else 0

    async def load_matcher(self) -> Matcher:
        """Build a full matcher from a snapshot that does not move while it is read.

        The index is built in a worker thread that pulls pages from the event loop one
        at a time, so a million entries never sit in memory as rows and the loop keeps
        answering logins between pages.
        """
        loop = asyncio.get_running_loop()
        async with self._db.snapshot() as snapshot:
            row = await snapshot.fetchone("SELECT version FROM blocklist_state")
            version = int(row[0]) if row else 0

            def page(after: str) -> list[tuple[Any, ...]]:
                fetching = snapshot.fetch(
                    f"{_SELECT_ENTRY} WHERE revoked = 0 AND entry_id > ? ORDER BY entry_id LIMIT ?",
                    (after, _MATCHER_PAGE),
                )
                return asyncio.run_coroutine_threadsafe(fetching, loop).result()

            def indicators() -> Iterator[Indicator]:
                after = ""
                while True:
                    rows = page(after)
                    yield from (_indicator(row) for row in rows)
                    if len(rows) < _MATCHER_PAGE:
                        return
                    after = rows[-1][0]

            return await asyncio.to_thread(Matcher.build, yielding(indicators()), version)

    async def changes_since(self, version: int, at_most: int | None = None) -> tuple[int, list[Indicator] | None]:
        """(current version, indicators changed after ``version`` up to it), or (current version, None) when
        more than ``at_most`` changed: then a rebuild from a snapshot is cheaper than reading them here.

        Two statements without a transaction: a row changed again meanwhile carries
        a newer change_seq and is picked up by the next call, never lost.
        """
        current = await self.version()
        if current <= version:
            return current, []
        query = f"{_SELECT_ENTRY} WHERE change_seq > ? AND change_seq <= ?"
        if at_most is not None:
            rows = await self._db.fetch(f"{query} LIMIT ?", (version, current, at_most + 1))
            if len(rows) > at_most:
                return current, None
        else:
            rows = await self._db.fetch(query, (version, current))
        if len(rows) > OFF_LOOP_ENTRIES:
            return current, await asyncio.to_thread(_indicators, rows)
        return current, _indicators(rows)

    # --- admin reads -------------------------------------------------------------------------

    async def get_entry(self, entry_id: str, connection: Connection | None = None) -> Entry | None:
        row = await (connection or self._db).fetchone(f"{_SELECT_ENTRY} WHERE entry_id = ?", (entry_id,))
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
        rows = await self._db.fetch(sql, (*parameters, query.page_size + 1))
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
        for column in ("category", "source", "key_type"):
            rows = await self._db.fetch(
                f"SELECT {column}, COUNT(*) FROM blocklist_entries WHERE {active} GROUP BY {column} ORDER BY {column}",
                (now, now),
            )
            counts[column] = [(row[0], int(row[1])) for row in rows]
        state = await self._db.fetchone("SELECT version, last_import_at FROM blocklist_state")
        assert state is not None  # the migration inserts the one row
        return BlocklistStatus(
            version=int(state[0]),
            active_count=sum(count for _, count in counts["category"]),
            by_category=tuple(counts["category"]),
            by_source=tuple(counts["source"]),
            last_import_at=state[1],
            by_key_type=tuple(counts["key_type"]),
        )

    async def applied_bundle(self, publisher: str, connection: Connection | None = None) -> AppliedBundle | None:
        row = await (connection or self._db).fetchone(
            "SELECT bundle_version, entries_sha256 FROM applied_bundles WHERE publisher = ?", (publisher,)
        )
        return AppliedBundle(int(row[0]), row[1]) if row else None

    async def audit_list(self, limit: int, target: str = "", before_id: int = 0) -> list[AuditRecord]:
        """Newest first; ``before_id`` pages further back."""
        clauses: list[str] = ["1 = 1"]
        parameters: list[str | int] = []
        if target:
            clauses.append("target = ?")
            parameters.append(target)
        if before_id:
            clauses.append("audit_id < ?")
            parameters.append(before_id)
        rows = await self._db.fetch(
            "SELECT audit_id, at, actor, action, target, before_json, after_json, detail FROM audit_log"
            f" WHERE {' AND '.join(clauses)} ORDER BY audit_id DESC LIMIT ?",
            (*parameters, limit),
        )
        return [AuditRecord(*row) for row in rows]

    # --- admin writes ------------------------------------------------------------------------

    @staticmethod
    async def _next_version(tx: Connection) -> int:
        row = await tx.fetchone("UPDATE blocklist_state SET version = version + 1 RETURNING version")
        assert row is not None  # the migration inserts the one row
        await tx.notify("blocklist")
        return int(row[0])

    @staticmethod
    async def _audit(
        tx: Connection,
        now: float,
        actor: str,
        action: str,
        target: str,
        before: Entry | None,
        after: Entry | None,
        detail: str,
    ) -> None:
        await insert_audit(
            tx,
            at=now,
            actor=actor,
            action=action,
            target=target,
            before_json=entry_json(before),
            after_json=entry_json(after),
            detail=detail,
        )

    async def _replayed(self, tx: Connection, request_id: str, operation: str, fingerprint: bytes) -> Entry | None:
        """The entry an earlier identical request produced; refuses the key reused for something else."""
        entry_id = await earlier_request(tx, request_id, operation, fingerprint)
        return await self.get_entry(entry_id, tx) if entry_id is not None else None

    async def _write_entry(
        self, tx: Connection, indicator: Indicator, existing: Entry | None, actor: str, now: float
    ) -> Entry:
        version = await self._next_version(tx)
        created_at, created_by = (existing.created_at, existing.created_by) if existing else (now, actor)
        await tx.execute(_UPSERT_ENTRY, (*_indicator_row(indicator), created_at, created_by, now, actor, version))
        return Entry(indicator, created_at, created_by, now, actor)

    async def add_entry(
        self, indicator: Indicator, actor: str, now: float, request_id: str = "", fingerprint: bytes = b""
    ) -> Entry:
        """Add, or list again an entry that was revoked; an active duplicate raises EntryExistsError."""
        async with self._db.transaction(REGISTRY_LOCK) as tx:
            if request_id:
                replayed = await self._replayed(tx, request_id, "add", fingerprint)
                if replayed is not None:
                    return replayed
            existing = await self.get_entry(indicator.entry_id, tx)
            if existing is not None and not existing.indicator.revoked:
                raise EntryExistsError(existing.entry_id)
            entry = await self._write_entry(tx, indicator, existing, actor, now)
            await self._audit(tx, now, actor, "relist" if existing else "add", entry.entry_id, existing, entry, "")
            if request_id:
                await remember_request(tx, request_id, "add", fingerprint, entry.entry_id, now)
            return entry

    async def revoke_entry(
        self, entry_id: str, reason: str, actor: str, now: float, request_id: str = "", fingerprint: bytes = b""
    ) -> Entry:
        """Revoke with a reason; revoking a revoked entry changes nothing and returns it."""
        async with self._db.transaction(REGISTRY_LOCK) as tx:
            if request_id:
                replayed = await self._replayed(tx, request_id, "revoke", fingerprint)
                if replayed is not None:
                    return replayed
            existing = await self.get_entry(entry_id, tx)
            if existing is None:
                raise EntryNotFoundError(entry_id)
            if existing.indicator.revoked:
                return existing
            entry = await self._write_entry(tx, existing.indicator.revoke(reason), existing, actor, now)
            await self._audit(tx, now, actor, "revoke", entry_id, existing, entry, reason)
            if request_id:
                await remember_request(tx, request_id, "revoke", fingerprint, entry_id, now)
            return entry

    @asynccontextmanager
    async def importing(
        self, *, actor: str, label: str, now: float, bundle: BundleRecord | None = None
    ) -> AsyncIterator[BlocklistImport]:
        """Stage with ``stage()`` inside the block; leaving it without error merges everything at once."""
        async with self._db.session() as held:
            # Same columns and types as the registry; the unique index lets the feed's last word win.
            await held.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS staged_entries AS SELECT {', '.join(_INDICATOR)}"
                " FROM blocklist_entries WHERE false"
            )
            await held.execute("CREATE UNIQUE INDEX IF NOT EXISTS staged_entries_id ON staged_entries (entry_id)")
            await held.execute("DELETE FROM staged_entries")
            session = BlocklistImport(held)
            try:
                yield session
                async with self._db.transaction(REGISTRY_LOCK, connection=held) as tx:
                    session.summary = await self._merge(tx, session.received, actor, label, now, bundle)
            finally:
                await held.execute("DELETE FROM staged_entries")

    async def _merge(
        self, tx: Connection, received: int, actor: str, label: str, now: float, bundle: BundleRecord | None
    ) -> ImportSummary:
        if bundle is not None:
            previous = await self.applied_bundle(bundle.publisher, tx)
            if previous == AppliedBundle(bundle.bundle_version, bundle.entries_sha256):
                raise BundleAppliedMeanwhileError(bundle.publisher, bundle.bundle_version)
            if previous is not None and previous.bundle_version >= bundle.bundle_version:
                raise BundleError(
                    f"bundle version {previous.bundle_version} of {bundle.publisher} was applied meanwhile;"
                    f" refusing version {bundle.bundle_version}"
                )
        incoming_revokes = "s.revoked = 1 AND e.revoked = 0"
        differs = " OR ".join(f"e.{name} IS DISTINCT FROM s.{name}" for name in _CONTENT)
        row = await tx.fetchone(
            "SELECT COUNT(*),"
            " COALESCE(SUM(CASE WHEN e.entry_id IS NULL THEN 1 ELSE 0 END), 0),"
            f" COALESCE(SUM(CASE WHEN e.entry_id IS NOT NULL AND {incoming_revokes} THEN 1 ELSE 0 END), 0),"
            f" COALESCE(SUM(CASE WHEN e.entry_id IS NOT NULL AND NOT ({incoming_revokes}) AND ({differs})"
            " THEN 1 ELSE 0 END), 0)"
            " FROM staged_entries s LEFT JOIN blocklist_entries e ON e.entry_id = s.entry_id"
        )
        assert row is not None
        distinct, added, revoked, updated = (int(value) for value in row)
        changed = added + revoked + updated
        if changed:
            version = await self._next_version(tx)
            columns = ", ".join(_INDICATOR)
            updates = ", ".join(f"{name} = excluded.{name}" for name in (*_CONTENT, "modified_at", "modified_by"))
            await tx.execute(
                f"INSERT INTO blocklist_entries ({columns}, created_at, created_by, modified_at, modified_by,"
                f" change_seq) SELECT {columns}, ?, ?, ?, ?, ? FROM staged_entries WHERE true"
                f" ON CONFLICT (entry_id) DO UPDATE SET {updates}, change_seq = excluded.change_seq WHERE {_DIFFERS}",
                (now, actor, now, actor, version),
            )
        else:
            version = int((await tx.fetchone("SELECT version FROM blocklist_state") or (0,))[0])
        await tx.execute("UPDATE blocklist_state SET last_import_at = ?", (now,))
        if bundle is not None:
            await tx.execute(
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
        await self._audit(tx, now, actor, "import", label, None, None, json.dumps(detail, sort_keys=True))
        return summary

    # --- feeds -----------------------------------------------------------------------------

    async def record_feed_attempt(self, status: FeedStatus) -> None:
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
        rows = await self._db.fetch(
            "SELECT url, last_attempt_at, last_success_at, last_error, etag, bundle_version FROM feed_status"
            " ORDER BY url"
        )
        return [FeedStatus(*row) for row in rows]


class BlocklistImport:
    """An import being staged; ``summary`` is set once the merge committed."""

    def __init__(self, connection: Connection) -> None:
        self._db = connection
        self.received = 0
        self.summary: ImportSummary | None = None

    async def stage(self, indicators: Sequence[Indicator]) -> None:
        """Add a batch; a later row with the same entry_id replaces an earlier one (the feed's last word wins)."""
        await self._db.executemany(_STAGE_ENTRY, yielding(_rows(indicators)))  # on SQLite, read on its thread
        self.received += len(indicators)


def _rows(indicators: Sequence[Indicator]) -> Iterator[tuple[Any, ...]]:
    return (_indicator_row(indicator) for indicator in indicators)
