"""The audit trail and idempotency keys of every admin change (registry, policy, outbox), on any backend."""

from __future__ import annotations

from gateway.store.database import Connection
from gateway.store.errors import RequestIdReusedError


async def insert_audit(
    db: Connection,
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
    db: Connection, request_id: str, operation: str, fingerprint: bytes, target: str, at: float
) -> None:
    """Record an admin write's AIP-155 key inside its transaction, with what it produced (``target``)."""
    await db.execute(
        "INSERT INTO admin_requests (request_id, operation, fingerprint, entry_id, at) VALUES (?, ?, ?, ?, ?)",
        (request_id, operation, fingerprint, target, at),
    )


async def earlier_request(db: Connection, request_id: str, operation: str, fingerprint: bytes) -> str | None:
    """What an earlier identical request produced; RequestIdReusedError when the key served another request."""
    row = await db.fetchone(
        "SELECT operation, fingerprint, entry_id FROM admin_requests WHERE request_id = ?", (request_id,)
    )
    if row is None:
        return None
    if row[0] != operation or bytes(row[1]) != fingerprint:
        raise RequestIdReusedError(request_id)
    return str(row[2])
