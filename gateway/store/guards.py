"""The store's side of abuse protection: login nonces (replay) and the FREEZE safety valve.

The valve is shared by every replica through one row: once FREEZE verdicts exceed the
cap within a minute it trips and stays tripped, so a poisoned feed or a bad rule cannot
freeze thousands of customers while nobody looks; only the security team resets it.
The count runs inside the login's transaction, which holds the commands lock, so concurrent
replicas cannot all slip in under the cap; a FREEZE past it trips the valve in that same
transaction (``SQLStore.record_freeze``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from gateway.store.audit import insert_audit
from gateway.store.database import Connection, Database
from gateway.store.errors import NonceReusedError
from gateway.store.outbox import COMMANDS_LOCK

VALVE_WINDOW_SECONDS = 60.0
FREEZE_ACTION = "ACTION_FREEZE"


@dataclass(frozen=True, slots=True)
class ValveState:
    tripped_at: float | None
    counting_since: float
    reset_at: float | None
    reset_by: str | None

    @property
    def tripped(self) -> bool:
        return self.tripped_at is not None


async def claim_nonce(tx: Connection, device_id: str, nonce: str, now: float) -> None:
    """Inside the login's transaction: the first login with this device's nonce claims it, a second is a replay."""
    claimed = await tx.execute(
        "INSERT INTO login_nonces (device_id, nonce, seen_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        (device_id, nonce, now),
    )
    if not claimed:
        raise NonceReusedError(device_id)


async def _valve(db: Connection | Database) -> ValveState:
    row = await db.fetchone("SELECT tripped_at, counting_since, reset_at, reset_by FROM safety_valve WHERE id = 1")
    assert row is not None  # migration 0005 inserts it
    return ValveState(row[0], row[1], row[2], row[3])


async def _freezes_since(db: Connection | Database, since: float) -> int:
    row = await db.fetchone(
        "SELECT COUNT(*) FROM verdicts WHERE action = ? AND decided_at >= ?", (FREEZE_ACTION, since)
    )
    return int(row[0]) if row else 0


def _window_start(state: ValveState, now: float) -> float:
    return max(now - VALVE_WINDOW_SECONDS, state.counting_since)


async def freeze_cap_reached(tx: Connection, now: float, cap: int) -> bool:
    """In a FREEZE login's transaction, before its verdict row: True if the valve is tripped or the
    last minute's FREEZE verdicts (since the last reset) already number ``cap``, so this one would pass it."""
    state = await _valve(tx)
    return state.tripped or await _freezes_since(tx, _window_start(state, now)) >= cap


async def trip_valve(tx: Connection, now: float) -> bool:
    """Mark the valve tripped; True only for the login that tripped it (the one to raise the alarm)."""
    return bool(await tx.execute("UPDATE safety_valve SET tripped_at = ? WHERE id = 1 AND tripped_at IS NULL", (now,)))


class GuardStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def valve(self) -> ValveState:
        return await _valve(self.db)

    async def recent_freezes(self, now: float) -> int:
        """FREEZE verdicts the valve counts right now (the last minute, since the last reset)."""
        return await _freezes_since(self.db, _window_start(await _valve(self.db), now))

    async def reset_valve(self, actor: str, now: float, reason: str) -> ValveState:
        """Close the valve: FREEZE verdicts go out again, counted afresh from now.  Audited."""
        async with self.db.transaction(COMMANDS_LOCK) as tx:
            before = await _valve(tx)
            await tx.execute(
                "UPDATE safety_valve SET tripped_at = NULL, counting_since = ?, reset_at = ?, reset_by = ?"
                " WHERE id = 1",
                (now, now, actor),
            )
            await insert_audit(
                tx,
                at=now,
                actor=actor,
                action="safety_valve.reset",
                target="safety_valve",
                before_json=json.dumps({"tripped_at": before.tripped_at, "counting_since": before.counting_since}),
                after_json=json.dumps({"tripped_at": None, "counting_since": now}),
                detail=reason,
            )
            return await _valve(tx)
