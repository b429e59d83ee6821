"""The outbox's SQL, on any backend: commands, their deliveries to push endpoints, and stream consumers.

A command is inserted inside the transaction that stores its verdict (``insert``),
so a crash can never leave a verdict without its command or the reverse.  A
delivery is "due" when it is pending, its retry time has come, nobody holds a
live lease on it, and no earlier command of the same customer is still pending
for the same endpoint: that last rule is what keeps per-customer order while
different customers are delivered in parallel.

Writes that add commands hold the "commands" lock until they commit, so the
feed's cursor and each customer's sequence are handed out in commit order even
when several replicas write at once: a stream consumer that has read cursor N
never later finds a smaller one appear.  Claims lock the deliveries they take
and skip those another replica is taking.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.store.audit import insert_audit
from gateway.store.database import Connection, Database, Row
from gateway.store.records import (
    AttemptOutcome,
    CommandOverview,
    CommandQuery,
    DeliveryAttempt,
    DeliveryState,
    DeliveryStatus,
    DueDelivery,
    EndpointMove,
    NewCommand,
    StoredCommand,
)

# The lock a transaction that adds commands must hold (see the module's docstring).
COMMANDS_LOCK = "commands"

_COMMAND_COLUMNS = "cursor, command_id, type, customer_id, sequence, verdict_id, created_at, issued_by, body"
# The same columns read through the alias "c" in joins.
_COMMAND_COLUMNS_OF_C = ", ".join(f"c.{name}" for name in _COMMAND_COLUMNS.split(", "))
_DELIVERY_COLUMNS = "endpoint, state, attempts, next_attempt_at, last_attempt_at, last_status, last_error, delivered_at"
DELIVERY_STATES = tuple(status.value for status in DeliveryStatus)
_CONSUMER_CURSOR = "SELECT acknowledged_cursor FROM command_consumers WHERE consumer_id = ?"

# The deliveries a dispatcher may send now, oldest first: pending, due, not leased by another
# dispatcher, to an endpoint that is not disabled, and the oldest pending one of its customer at
# that endpoint (a customer's commands arrive in order).  {endpoints}: one mark per endpoint;
# {skip_locked}: PostgreSQL's FOR UPDATE SKIP LOCKED, so replicas claim different rows.
_DUE_DELIVERIES = (
    f"SELECT d.attempts, d.endpoint, {_COMMAND_COLUMNS_OF_C}"
    " FROM command_deliveries d JOIN commands c ON c.cursor = d.cursor"
    " WHERE d.state = 'pending' AND d.endpoint IN ({endpoints})"
    " AND d.next_attempt_at <= ? AND d.lease_expires_at <= ?"
    " AND d.endpoint NOT IN (SELECT endpoint FROM command_endpoints WHERE disabled_at IS NOT NULL)"
    " AND NOT EXISTS (SELECT 1 FROM command_deliveries e WHERE e.endpoint = d.endpoint"
    "  AND e.customer_id = d.customer_id AND e.state = 'pending' AND e.sequence < d.sequence)"
    " ORDER BY d.cursor LIMIT ?{skip_locked}"
)
# One command queued again for one endpoint with fresh attempts, whatever its delivery there was.
_QUEUE_AGAIN = (
    "INSERT INTO command_deliveries (cursor, endpoint, customer_id, sequence, state, next_attempt_at)"
    " SELECT cursor, ?, customer_id, sequence, 'pending', ? FROM commands WHERE command_id = ?"
    " ON CONFLICT (cursor, endpoint) DO UPDATE SET state = 'pending', attempts = 0,"
    " next_attempt_at = excluded.next_attempt_at, lease_owner = '', lease_expires_at = 0,"
    " last_error = '', delivered_at = NULL"
)
# A stream consumer's acknowledged position, moved forward only: a late or repeated Ack never
# takes it back.
_ACKNOWLEDGE = (
    "INSERT INTO command_consumers (consumer_id, acknowledged_cursor, updated_at) VALUES (?, ?, ?)"
    " ON CONFLICT (consumer_id) DO UPDATE SET acknowledged_cursor = CASE"
    " WHEN excluded.acknowledged_cursor > command_consumers.acknowledged_cursor"
    " THEN excluded.acknowledged_cursor ELSE command_consumers.acknowledged_cursor END,"
    " updated_at = excluded.updated_at"
)


def _command(row: Sequence[Any]) -> StoredCommand:
    return StoredCommand(
        cursor=row[0],
        command_id=row[1],
        type=row[2],
        customer_id=row[3],
        sequence=row[4],
        verdict_id=row[5],
        created_at=row[6],
        issued_by=row[7],
        body=bytes(row[8]),
    )


def _delivery(row: Sequence[Any]) -> DeliveryState:
    return DeliveryState(*row)


class CommandStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    async def insert(tx: Connection, command: NewCommand) -> None:
        """Add ``command`` and its deliveries inside ``tx``, which holds COMMANDS_LOCK."""
        row = await tx.fetchone(
            "INSERT INTO commands (command_id, type, customer_id, sequence, verdict_id, created_at, issued_by, body)"
            " SELECT ?, ?, ?, COALESCE(MAX(sequence), 0) + 1, ?, ?, ?, ? FROM commands WHERE customer_id = ?"
            " RETURNING cursor",
            (
                command.command_id,
                command.type,
                command.customer_id,
                command.verdict_id,
                command.created_at,
                command.issued_by,
                command.body,
                command.customer_id,
            ),
        )
        assert row is not None  # RETURNING of a one-row INSERT
        position = row[0]
        await tx.executemany(
            "INSERT INTO command_deliveries (cursor, endpoint, customer_id, sequence, state, next_attempt_at)"
            " SELECT cursor, ?, customer_id, sequence, 'pending', created_at FROM commands WHERE cursor = ?",
            [(endpoint, position) for endpoint in command.endpoints],
        )
        await tx.notify("commands")

    async def issue(self, command: NewCommand, detail: str) -> StoredCommand:
        """Store a command on its own (the security team's UNFREEZE), audited, and return it as stored."""
        async with self._db.transaction(COMMANDS_LOCK) as tx:
            await self.insert(tx, command)
            await insert_audit(
                tx,
                at=command.created_at,
                actor=command.issued_by,
                action=f"command.{command.type.lower()}",
                target=command.customer_id,
                detail=detail,
            )
        stored = await self.get(command.command_id)
        assert stored is not None, "a committed command must be readable"
        return stored

    async def get(self, command_id: str) -> StoredCommand | None:
        rows = await self._db.fetch(f"SELECT {_COMMAND_COLUMNS} FROM commands WHERE command_id = ?", (command_id,))
        return _command(rows[0]) if rows else None

    async def after(self, cursor: int, limit: int) -> list[StoredCommand]:
        """Commands past ``cursor`` in feed order (what a stream consumer has not seen yet)."""
        rows = await self._db.fetch(
            f"SELECT {_COMMAND_COLUMNS} FROM commands WHERE cursor > ? ORDER BY cursor LIMIT ?", (cursor, limit)
        )
        return [_command(row) for row in rows]

    async def last_cursor(self) -> int:
        rows = await self._db.fetch("SELECT COALESCE(MAX(cursor), 0) FROM commands")
        return int(rows[0][0])

    async def deliveries(self, cursor: int) -> list[DeliveryState]:
        rows = await self._db.fetch(
            f"SELECT {_DELIVERY_COLUMNS} FROM command_deliveries WHERE cursor = ? ORDER BY endpoint", (cursor,)
        )
        return [_delivery(row) for row in rows]

    async def attempts(self, cursor: int) -> list[DeliveryAttempt]:
        rows = await self._db.fetch(
            "SELECT endpoint, attempt, at, duration_ms, status, outcome, error FROM command_attempts"
            " WHERE cursor = ? ORDER BY id",
            (cursor,),
        )
        return [
            DeliveryAttempt(
                endpoint=row[0],
                attempt=row[1],
                at=row[2],
                duration_ms=row[3],
                status=row[4],
                outcome=AttemptOutcome(row[5]),
                error=row[6],
            )
            for row in rows
        ]

    async def overview(self, query: CommandQuery) -> list[CommandOverview]:
        conditions: list[str] = []
        parameters: list[Any] = []
        if query.before:
            conditions.append("c.cursor < ?")
            parameters.append(query.before)
        if query.customer_id:
            conditions.append("c.customer_id = ?")
            parameters.append(query.customer_id)
        if query.state:
            conditions.append("EXISTS (SELECT 1 FROM command_deliveries d WHERE d.cursor = c.cursor AND d.state = ?)")
            parameters.append(query.state)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = await self._db.fetch(
            f"SELECT {_COMMAND_COLUMNS_OF_C} FROM commands c{where} ORDER BY c.cursor DESC LIMIT ?",
            [*parameters, query.limit],
        )
        return [CommandOverview(_command(row), tuple(await self.deliveries(row[0]))) for row in rows]

    async def claim_due(
        self, endpoints: Sequence[str], owner: str, now: float, lease_seconds: float, limit: int
    ) -> list[DueDelivery]:
        """Lease up to ``limit`` due deliveries to ``owner``, oldest first, at most one per customer and endpoint."""
        if not endpoints:
            return []
        marks = ", ".join("?" for _ in endpoints)

        async def claim(tx: Connection) -> list[Row]:
            rows = await tx.fetch(
                _DUE_DELIVERIES.format(endpoints=marks, skip_locked=self._db.skip_locked("d")),
                [*endpoints, now, now, limit],
            )
            await tx.executemany(
                "UPDATE command_deliveries SET lease_owner = ?, lease_expires_at = ? WHERE cursor = ? AND endpoint = ?",
                [(owner, now + lease_seconds, row[2], row[1]) for row in rows],
            )
            return rows

        # One unit, not a transaction held across awaits: on SQLite it joins the logins' group commit
        # instead of waiting its turn for the write lock through a busy event loop.
        rows = await self._db.run_in_transaction(claim)
        return [DueDelivery(_command(row[2:]), row[1], row[0]) for row in rows]

    async def record_attempt(self, cursor: int, attempt: DeliveryAttempt, owner: str) -> bool:
        """Store one attempt's outcome; False when ``owner`` lost its lease meanwhile (nothing is changed then)."""
        state = attempt.outcome.status

        async def record(tx: Connection) -> bool:
            changed = await tx.execute(
                "UPDATE command_deliveries SET state = ?, attempts = ?, last_attempt_at = ?, last_status = ?,"
                " last_error = ?, next_attempt_at = ?, delivered_at = ?, lease_owner = '', lease_expires_at = 0"
                " WHERE cursor = ? AND endpoint = ? AND lease_owner = ? AND state = 'pending'",
                (
                    state,
                    attempt.attempt,
                    attempt.at,
                    attempt.status,
                    attempt.error,
                    attempt.next_attempt_at,
                    attempt.at if state is DeliveryStatus.DELIVERED else None,
                    cursor,
                    attempt.endpoint,
                    owner,
                ),
            )
            if changed == 0:
                return False
            await tx.execute(
                "INSERT INTO command_attempts (cursor, endpoint, attempt, at, duration_ms, status, outcome, error)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    cursor,
                    attempt.endpoint,
                    attempt.attempt,
                    attempt.at,
                    attempt.duration_ms,
                    attempt.status,
                    attempt.outcome,
                    attempt.error,
                ),
            )
            if attempt.outcome is AttemptOutcome.GONE:
                await tx.execute(
                    "INSERT INTO command_endpoints (endpoint, disabled_at, disabled_reason) VALUES (?, ?, ?)"
                    " ON CONFLICT (endpoint) DO UPDATE SET disabled_at = excluded.disabled_at,"
                    " disabled_reason = excluded.disabled_reason",
                    (attempt.endpoint, attempt.at, attempt.error),
                )
            return True

        return await self._db.run_in_transaction(record)

    async def release_leases(self, owner: str) -> int:
        """Give back ``owner``'s leases (a clean shutdown), so a restarted gateway need not wait for them to expire."""
        released = await self._db.execute(
            "UPDATE command_deliveries SET lease_owner = '', lease_expires_at = 0"
            " WHERE lease_owner = ? AND state = 'pending'",
            (owner,),
        )
        if released:
            await self._db.notify("commands")
        return released

    async def redeliver(self, command_id: str, endpoints: Sequence[str], now: float, actor: str) -> int:
        """Queue the command again for ``endpoints`` with fresh attempts; returns how many deliveries were queued."""
        queued = 0
        async with self._db.transaction() as tx:
            await insert_audit(
                tx, at=now, actor=actor, action="command.redeliver", target=command_id, detail=" ".join(endpoints)
            )
            for endpoint in endpoints:
                queued += await tx.execute(_QUEUE_AGAIN, (endpoint, now, command_id))
            await tx.notify("commands")
        return queued

    async def move_pending(self, old: str, new: str, now: float, actor: str) -> EndpointMove:
        """Hand ``old``'s pending deliveries to ``new`` (its URL changed).

        Each moved delivery starts afresh at ``new`` and is gone from ``old``; its attempts there
        stay on record.  (Closed as dead instead, it would keep its command from retention for
        good: a dead delivery is one an operator has yet to handle.)  A command that already has
        a delivery to ``new`` (a redeliver) keeps that one.  A delivery under a live lease is being
        attempted at ``old`` by a gateway that still has the old URL configured: moved, it would be
        sent to both, so it stays until its attempt ends.  ``old`` is no longer announced as pushed
        to.  Audited, in one transaction.
        """
        idle = "endpoint = ? AND state = 'pending' AND lease_expires_at <= ?"
        async with self._db.transaction() as tx:
            counted = await tx.fetch(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN lease_expires_at > ? THEN 1 ELSE 0 END), 0),"
                " COALESCE(MAX(lease_expires_at), 0) FROM command_deliveries WHERE endpoint = ? AND state = 'pending'",
                (now, old),
            )
            pending, sending, sending_until = int(counted[0][0]), int(counted[0][1]), float(counted[0][2])
            moved = await tx.execute(
                "INSERT INTO command_deliveries (cursor, endpoint, customer_id, sequence, state, next_attempt_at)"
                f" SELECT cursor, ?, customer_id, sequence, 'pending', ? FROM command_deliveries WHERE {idle}"
                " ON CONFLICT (cursor, endpoint) DO NOTHING",
                (new, now, old, now),
            )
            await tx.execute(f"DELETE FROM command_deliveries WHERE {idle}", (old, now))
            # The old URL is out of use: new commands stop being queued for it at once, not when its
            # announcement runs out (a gateway that still pushes there says so again at its next round).
            await tx.execute("UPDATE command_endpoints SET announced_at = NULL WHERE endpoint = ?", (old,))
            await insert_audit(
                tx, at=now, actor=actor, action="command.endpoint_move", target=old, detail=f"{new} ({moved} moved)"
            )
            await tx.notify("commands")
        return EndpointMove(moved, pending - sending - moved, sending, sending_until if sending else 0.0)

    async def backlog(self) -> dict[str, int]:
        """Pending deliveries per endpoint."""
        rows = await self._db.fetch(
            "SELECT endpoint, COUNT(*) FROM command_deliveries WHERE state = 'pending' GROUP BY endpoint"
        )
        return {row[0]: int(row[1]) for row in rows}

    async def counts(self) -> dict[tuple[str, str], int]:
        """Deliveries by (endpoint, state), for `mtsg commands status`."""
        rows = await self._db.fetch("SELECT endpoint, state, COUNT(*) FROM command_deliveries GROUP BY endpoint, state")
        return {(row[0], row[1]): int(row[2]) for row in rows}

    async def disabled_endpoints(self) -> dict[str, tuple[float, str]]:
        rows = await self._db.fetch(
            "SELECT endpoint, disabled_at, disabled_reason FROM command_endpoints WHERE disabled_at IS NOT NULL"
        )
        return {row[0]: (row[1], row[2]) for row in rows}

    async def enable_endpoint(self, endpoint: str, now: float, actor: str) -> bool:
        """Lift a 410 disablement; False (and nothing audited) when the endpoint was not disabled."""
        async with self._db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE command_endpoints SET disabled_at = NULL, disabled_reason = ''"
                " WHERE endpoint = ? AND disabled_at IS NOT NULL",
                (endpoint,),
            )
            if changed == 0:
                return False
            await tx.notify("commands")
            await insert_audit(tx, at=now, actor=actor, action="command.endpoint_enable", target=endpoint)
        return True

    async def announce_endpoints(self, endpoints: Sequence[str], now: float) -> None:
        """Record that a serving gateway pushes to ``endpoints`` (a disablement, if any, is kept)."""
        if not endpoints:
            return
        async with self._db.transaction() as tx:
            await tx.executemany(
                "INSERT INTO command_endpoints (endpoint, announced_at) VALUES (?, ?)"
                " ON CONFLICT (endpoint) DO UPDATE SET announced_at = excluded.announced_at",
                [(endpoint, now) for endpoint in endpoints],
            )

    async def pushed_endpoints(self, since: float) -> tuple[str, ...]:
        """Endpoints some gateway announced at or after ``since``: where the installation pushes commands."""
        rows = await self._db.fetch(
            "SELECT endpoint FROM command_endpoints WHERE announced_at >= ? ORDER BY endpoint", (since,)
        )
        return tuple(row[0] for row in rows)

    async def consumers(self) -> list[tuple[str, int, float]]:
        """Every stream consumer that has acknowledged: (consumer_id, acknowledged cursor, when), by id."""
        rows = await self._db.fetch(
            "SELECT consumer_id, acknowledged_cursor, updated_at FROM command_consumers ORDER BY consumer_id"
        )
        return [(row[0], int(row[1]), float(row[2])) for row in rows]

    async def oldest_unacknowledged(self) -> float | None:
        """When the oldest command some stream consumer has yet to acknowledge was created; None when none is."""
        row = await self._db.fetchone(
            "SELECT created_at FROM commands"
            " WHERE cursor > (SELECT MIN(acknowledged_cursor) FROM command_consumers) ORDER BY cursor LIMIT 1"
        )
        return None if row is None else float(row[0])

    async def forget_consumer(self, consumer_id: str, now: float, actor: str, reason: str) -> bool:
        """Stop keeping commands for a consumer that no longer reads; False when there is no such consumer.

        Retention keeps every command until each consumer has acknowledged it, so one consumer
        gone for good (decommissioned, or a test's id) would keep them all for ever.  Audited.
        """
        async with self._db.transaction() as tx:
            if await tx.execute("DELETE FROM command_consumers WHERE consumer_id = ?", (consumer_id,)) == 0:
                return False
            await insert_audit(
                tx, at=now, actor=actor, action="command.consumer_forget", target=consumer_id, detail=reason
            )
        return True

    async def consumer_cursor(self, consumer_id: str) -> int:
        rows = await self._db.fetch(_CONSUMER_CURSOR, (consumer_id,))
        return int(rows[0][0]) if rows else 0

    async def acknowledge(self, consumer_id: str, cursor: int, now: float) -> int:
        """Move the consumer's position forward to ``cursor`` (never back); returns the position after.

        Written and read back in one unit of the logins' shared transactions (``run_in_transaction``),
        like every write a call makes: on SQLite a statement of its own held the write lock across a
        trip to aiosqlite's thread, and the logins' group commit waited behind it.
        """

        async def advance(tx: Connection) -> int:
            await tx.execute(_ACKNOWLEDGE, (consumer_id, cursor, now))
            row = await tx.fetchone(_CONSUMER_CURSOR, (consumer_id,))
            return int(row[0]) if row else 0

        return await self._db.run_in_transaction(advance)
