"""The audit trail and idempotency keys of every admin change stored in SQLite (registry, policy, outbox)."""

from __future__ import annotations

import aiosqlite

from gateway.store.errors import RequestIdReusedError


async def insert_audit(
    db: aiosqlite.Connection,
    *,
    at: float,
    actor: str,
    action: str,
    target: str,
    before_json: str | None = None,
    after_json: str | None = None,
    detail: str = "",
) -> None:
    """Append a row; the caller holds the write transaction, so the change and its audit commit together."""
    await db.execute(
        "INSERT INTO audit_log (at, actor, action, target, before_json, after_json, detail)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (at, actor, action, target, before_json, after_json, detail),
    )


async def remember_request(
    db: aiosqlite.Connection, request_id: str, operation: str, fingerprint: bytes, target: str, at: float
) -> None:
    """Record an admin write's AIP-155 key inside its transaction, with what it produced (``target``)."""
    await db.execute(
        "INSERT INTO admin_requests (request_id, operation, fingerprint, entry_id, at) VALUES (?, ?, ?, ?, ?)",
        (request_id, operation, fingerprint, target, at),
    )


async def earlier_request(db: aiosqlite.Connection, request_id: str, operation: str, fingerprint: bytes) -> str | None:
    """What an earlier identical request produced; RequestIdReusedError when the key served another request."""
    async with db.execute(
        "SELECT operation, fingerprint, entry_id FROM admin_requests WHERE request_id = ?", (request_id,)
    ) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return None
    if row[0] != operation or bytes(row[1]) != fingerprint:
        raise RequestIdReusedError(request_id)
    return str(row[2])
