"""Policy versions and shadow-scenario reports on SQLite.

Versions are numbered 1, 2, 3… in commit order under the write lock; the highest
is in force, so "what is live" is one indexed MAX and every gateway polling it
sees the same answer.  A rollback is a new version carrying the old document,
so history is never rewritten.  Applies and rollbacks go to the audit log.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiosqlite

from gateway.store.records import ShadowSummary, StoredPolicy
from gateway.store.sqlite_audit import earlier_request, insert_audit, remember_request

WriteTransaction = Callable[[], AbstractAsyncContextManager[None]]
_COLUMNS = "version, document, document_sha256, applied_by, applied_at, comment, restored_version"
_SEVERITY_ORDER = {"ACTION_ALLOW": 1, "ACTION_STEP_UP": 2, "ACTION_FREEZE": 3}


def document_sha256(document: str) -> str:
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


def _policy(row: Sequence[Any]) -> StoredPolicy:
    return StoredPolicy(int(row[0]), row[1], row[2], row[3], float(row[4]), row[5], row[6])


class SQLitePolicyStore:
    def __init__(self, db: aiosqlite.Connection, write_transaction: WriteTransaction) -> None:
        self._db = db
        self._write_transaction = write_transaction

    async def head_version(self) -> int:
        """The version in force (0 when none was ever applied): cheap enough to poll."""
        async with self._db.execute("SELECT COALESCE(MAX(version), 0) FROM policy_versions") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def get(self, version: int | None = None) -> StoredPolicy | None:
        """The given version, or the one in force when ``version`` is None."""
        if version is None:
            sql, parameters = f"SELECT {_COLUMNS} FROM policy_versions ORDER BY version DESC LIMIT 1", ()
        else:
            sql, parameters = f"SELECT {_COLUMNS} FROM policy_versions WHERE version = ?", (version,)
        async with self._db.execute(sql, parameters) as cursor:
            row = await cursor.fetchone()
        return _policy(row) if row else None

    async def versions(self, limit: int, before: int = 0) -> list[StoredPolicy]:
        """Newest first; ``before`` pages on (versions lower than it)."""
        async with self._db.execute(
            f"SELECT {_COLUMNS} FROM policy_versions WHERE (? = 0 OR version < ?) ORDER BY version DESC LIMIT ?",
            (before, before, limit),
        ) as cursor:
            return [_policy(row) for row in await cursor.fetchall()]

    async def apply(
        self,
        document: str,
        *,
        actor: str,
        comment: str,
        at: float,
        request_id: str = "",
        restored_version: int | None = None,
    ) -> StoredPolicy:
        """Store ``document`` (already validated by the caller) as the next version, audited.

        A retried call with the same ``request_id`` and document returns the version it
        made the first time; the same key with another document raises RequestIdReusedError.
        """
        digest = document_sha256(document)
        operation = "policy.rollback" if restored_version is not None else "policy.apply"
        fingerprint = hashlib.sha256(f"{operation}\n{restored_version}\n{comment}\n{digest}".encode()).digest()
        async with self._write_transaction():
            if request_id:
                earlier = await earlier_request(self._db, request_id, operation, fingerprint)
                if earlier is not None:
                    stored = await self.get(int(earlier))
                    assert stored is not None  # versions are never deleted
                    return stored
            previous = await self.get()
            version = (previous.version if previous else 0) + 1
            await self._db.execute(
                f"INSERT INTO policy_versions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (version, document, digest, actor, at, comment, restored_version),
            )
            if request_id:
                await remember_request(self._db, request_id, operation, fingerprint, str(version), at)
            await insert_audit(
                self._db,
                at=at,
                actor=actor,
                action=operation,
                target=f"policy:{version}",
                before_json=json.dumps({"version": previous.version, "sha256": previous.document_sha256})
                if previous
                else None,
                after_json=json.dumps({"version": version, "sha256": digest, "restored_version": restored_version}),
                detail=comment,
            )
        return StoredPolicy(version, document, digest, actor, at, comment, restored_version)

    async def ensure_initial(self, document: str, *, actor: str, at: float) -> StoredPolicy:
        """Put ``document`` in force as version 1 when no policy was ever applied; else return the one in force."""
        async with self._write_transaction():
            await self._db.execute(
                f"INSERT INTO policy_versions ({_COLUMNS}) SELECT 1, ?, ?, ?, ?, ?, NULL"
                " WHERE NOT EXISTS (SELECT 1 FROM policy_versions)",
                (document, document_sha256(document), actor, at, "the policy shipped with mtsg"),
            )
        current = await self.get()
        assert current is not None  # inserted above or already there
        return current

    async def shadow_report(self, since: float, until: float) -> list[ShadowSummary]:
        """Per shadow scenario and would-be action: firings, customers, and verdicts it would have changed."""
        async with self._db.execute(
            "SELECT scenario_id, would_action, actual_action, customer_id, policy_version FROM shadow_firings"
            " WHERE decided_at >= ? AND decided_at < ? ORDER BY scenario_id",
            (since, until),
        ) as cursor:
            rows = await cursor.fetchall()
        fired: Counter[tuple[str, str]] = Counter()
        customers: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
        changes: Counter[tuple[str, str]] = Counter()
        actual: defaultdict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        versions: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
        for scenario_id, would, actual_action, customer_id, policy_version in rows:
            key = (scenario_id, would)
            fired[key] += 1
            customers[key].add(customer_id)
            actual[key][actual_action] += 1
            versions[key].add(policy_version)
            if _SEVERITY_ORDER.get(would, 0) > _SEVERITY_ORDER.get(actual_action, 0):
                changes[key] += 1
        return [
            ShadowSummary(
                scenario_id=key[0],
                would_action=key[1],
                fired=count,
                customers=len(customers[key]),
                would_change=changes[key],
                by_actual_action=dict(sorted(actual[key].items())),
                policy_versions=tuple(sorted(versions[key], key=lambda v: (len(v), v))),
            )
            for key, count in sorted(fired.items())
        ]
