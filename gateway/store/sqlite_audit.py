"""One audit-trail writer for every admin change stored in SQLite (registry and outbox alike)."""

from __future__ import annotations

import aiosqlite


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
