"""Policy versions and shadow-scenario reports, on any backend.

Versions are numbered 1, 2, 3… in commit order under the "policy" lock; the highest
is in force, so "what is live" is one indexed MAX and every gateway polling it
sees the same answer.  A rollback is a new version carrying the old document,
so history is never rewritten.  Applies and rollbacks go to the audit log.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from gateway.store.audit import earlier_request, insert_audit, remember_request
from gateway.store.database import Connection, Database
from gateway.store.records import ShadowSummary, StoredPolicy

_COLUMNS = "version, document, document_sha256, applied_by, applied_at, comment, restored_version"
_SEVERITY_ORDER = {"ACTION_ALLOW": 1, "ACTION_STEP_UP": 2, "ACTION_FREEZE": 3}


def document_sha256(document: str) -> str:
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


def _policy(row: Sequence[Any]) -> StoredPolicy:
    return StoredPolicy(int(row[0]), row[1], row[2], row[3], float(row[4]), row[5], row[6])


class PolicyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def head_version(self) -> int:
        """The version in force (0 when none was ever applied): cheap enough to poll."""
        row = await self._db.fetchone("SELECT COALESCE(MAX(version), 0) FROM policy_versions")
        return int(row[0]) if row else 0

    async def get(self, version: int | None = None, connection: Connection | None = None) -> StoredPolicy | None:
        """The given version, or the one in force when ``version`` is None (read on ``connection`` if given)."""
        parameters: tuple[int, ...] = ()
        if version is None:
            sql = f"SELECT {_COLUMNS} FROM policy_versions ORDER BY version DESC LIMIT 1"
        else:
            sql, parameters = f"SELECT {_COLUMNS} FROM policy_versions WHERE version = ?", (version,)
        row = await (connection or self._db).fetchone(sql, parameters)
        return _policy(row) if row else None

    async def versions(self, limit: int, before: int = 0) -> list[StoredPolicy]:
        """Newest first; ``before`` pages on (versions lower than it)."""
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM policy_versions WHERE (? = 0 OR version < ?) ORDER BY version DESC LIMIT ?",
            (before, before, limit),
        )
        return [_policy(row) for row in rows]

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
        stored, _ = await self._apply(document, actor, comment, at, request_id, restored_version, False)
        return stored

    async def apply_unless_in_force(
        self, document: str, *, actor: str, comment: str, at: float, request_id: str = ""
    ) -> StoredPolicy | None:
        """``apply``, unless the version in force already has this very document: then None.

        Checked in the transaction that would store it: replicas (or workers) applying one
        policy file at the same moment, at a rolling start or on SIGHUP, store it once.  Checked
        before it, each of two found the file new and both stored it (versions 2 and 3, the same).
        """
        stored, created = await self._apply(document, actor, comment, at, request_id, None, True)
        return stored if created else None

    async def _apply(
        self,
        document: str,
        actor: str,
        comment: str,
        at: float,
        request_id: str,
        restored_version: int | None,
        keep_identical: bool,
    ) -> tuple[StoredPolicy, bool]:
        """The version stored for this request, and whether this call (or its first try) made it."""
        digest = document_sha256(document)
        operation = "policy.rollback" if restored_version is not None else "policy.apply"
        fingerprint = hashlib.sha256(f"{operation}\n{restored_version}\n{comment}\n{digest}".encode()).digest()
        async with self._db.transaction("policy") as tx:
            if request_id:
                earlier = await earlier_request(tx, request_id, operation, fingerprint)
                if earlier is not None:
                    stored = await self.get(int(earlier), tx)
                    assert stored is not None  # versions are never deleted
                    return stored, True
            previous = await self.get(connection=tx)
            if keep_identical and previous is not None and previous.document_sha256 == digest:
                return previous, False
            appended = await self._append(
                tx,
                previous,
                document,
                digest=digest,
                operation=operation,
                actor=actor,
                comment=comment,
                at=at,
                restored_version=restored_version,
                request_id=request_id,
                fingerprint=fingerprint,
            )
            return appended, True

    async def _append(
        self,
        tx: Connection,
        previous: StoredPolicy | None,
        document: str,
        *,
        digest: str,
        operation: str,
        actor: str,
        comment: str,
        at: float,
        restored_version: int | None = None,
        request_id: str = "",
        fingerprint: bytes = b"",
    ) -> StoredPolicy:
        """The next version after ``previous``, with its audit row (and its request id, when given)."""
        version = (previous.version if previous else 0) + 1
        await tx.execute(
            f"INSERT INTO policy_versions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (version, document, digest, actor, at, comment, restored_version),
        )
        if request_id:
            await remember_request(tx, request_id, operation, fingerprint, str(version), at)
        await insert_audit(
            tx,
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
        await tx.notify("policy")
        return StoredPolicy(version, document, digest, actor, at, comment, restored_version)

    async def ensure_initial(self, document: str, *, actor: str, at: float) -> StoredPolicy:
        """Put ``document`` in force as version 1 when no policy was ever applied; else return the one in force."""
        async with self._db.transaction("policy") as tx:
            await tx.execute(
                f"INSERT INTO policy_versions ({_COLUMNS}) SELECT 1, ?, ?, ?, ?, ?, NULL"
                " WHERE NOT EXISTS (SELECT 1 FROM policy_versions)",
                (document, document_sha256(document), actor, at, "the policy shipped with mtsg"),
            )
        current = await self.get()
        assert current is not None  # inserted above or already there
        return current

    async def shadow_report(self, since: float, until: float) -> list[ShadowSummary]:
        """Per shadow scenario and would-be action: firings, customers, and verdicts it would have changed."""
        rows = await self._db.fetch(
            "SELECT scenario_id, would_action, actual_action, customer_id, policy_version FROM shadow_firings"
            " WHERE decided_at >= ? AND decided_at < ? ORDER BY scenario_id",
            (since, until),
        )
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
