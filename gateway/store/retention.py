"""Retention: what the store may forget, and forgetting it in small batches.

A bank keeps device history and verdicts only as long as its retention rules say; the
gateway forgets on its own (a periodic job) or on ``mtsg purge``.  Some rows must
outlive their age because something still depends on them:

* a verdict stays while a command or a login location points at it;
* a command stays until every webhook delivery of it is ``delivered`` (a dead or
  pending one is the operator's to handle) and every stream consumer has acknowledged
  it, and a customer's newest command always stays: the next command's ``sequence``
  is the newest one's plus one, so removing it would restart the customer's order.

Each batch is its own short transaction and re-checks the conditions in its DELETE, so
a login writing at the same moment (a device seen again, a delivery redelivered) wins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.store.database import Connection, Database
from gateway.store.outbox import COMMANDS_LOCK

DAY = 86400.0
DEFAULT_BATCH_SIZE = 1000

# The commands a purge may remove: old, fully delivered, acknowledged, not a customer's newest.
_DELIVERED_AND_ACKNOWLEDGED = (
    "c.created_at < ?"
    " AND NOT EXISTS (SELECT 1 FROM command_deliveries d WHERE d.cursor = c.cursor AND d.state <> 'delivered')"
    " AND NOT EXISTS (SELECT 1 FROM command_consumers k WHERE k.acknowledged_cursor < c.cursor)"
    " AND (EXISTS (SELECT 1 FROM command_deliveries d WHERE d.cursor = c.cursor)"
    "      OR EXISTS (SELECT 1 FROM command_consumers))"
    " AND EXISTS (SELECT 1 FROM commands n WHERE n.customer_id = c.customer_id AND n.sequence > c.sequence)"
)
_UNREFERENCED_VERDICT = (
    "v.decided_at < ?"
    " AND NOT EXISTS (SELECT 1 FROM commands c WHERE c.verdict_id = v.verdict_id)"
    " AND NOT EXISTS (SELECT 1 FROM login_locations l WHERE l.verdict_id = v.verdict_id)"
    " AND NOT EXISTS (SELECT 1 FROM shadow_firings s WHERE s.verdict_id = v.verdict_id)"
)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Ages in days; 0 keeps those rows for ever.  Nonces are always forgotten once useless."""

    # A nonce is useless once a replay of its login would be refused as too old anyway.
    nonce_seconds: float
    device_history_days: float = 0.0
    verdicts_days: float = 0.0
    commands_days: float = 0.0
    phone_changes_days: float = 0.0


@dataclass(frozen=True, slots=True)
class _Step:
    """One kind of row to forget: the condition (over ``alias``, one ``?`` for the cutoff), key and locks."""

    table: str
    key: tuple[str, ...]
    condition: str
    alias: str
    locks: tuple[str, ...] = ()


_COMMANDS = _Step("commands", ("cursor",), _DELIVERED_AND_ACKNOWLEDGED, "c", (COMMANDS_LOCK,))


def _steps(policy: RetentionPolicy) -> list[tuple[_Step, float]]:
    """The steps that apply, each with its age in seconds, in an order that respects references."""
    device = policy.device_history_days * DAY
    verdicts = policy.verdicts_days * DAY
    steps = [
        (_Step("login_nonces", ("device_id", "nonce"), "t.seen_at < ?", "t"), policy.nonce_seconds),
        (_Step("customer_devices", ("customer_id", "device_id"), "t.last_seen_at < ?", "t"), device),
        (_Step("device_inventories", ("device_id",), "t.observed_at < ?", "t"), device),
        (_Step("login_locations", ("id",), "t.observed_at < ?", "t"), device),
        (_Step("phone_number_changes", ("event_id",), "t.changed_at < ?", "t"), policy.phone_changes_days * DAY),
        (_COMMANDS, policy.commands_days * DAY),
        (_Step("shadow_firings", ("id",), "t.decided_at < ?", "t"), verdicts),
        (_Step("verdicts", ("verdict_id",), _UNREFERENCED_VERDICT, "v"), verdicts),
    ]
    return [(step, age) for step, age in steps if age > 0]


def _key_match(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
    """``c IN (?, …)`` or ``(a, b) IN (VALUES (?, ?), …)`` for a batch of keys, with its parameters."""
    parameters = [value for row in rows for value in row]
    if len(columns) == 1:
        return f"{columns[0]} IN ({', '.join('?' * len(rows))})", parameters
    one = "(" + ", ".join("?" * len(columns)) + ")"
    return f"({', '.join(columns)}) IN (VALUES {', '.join([one] * len(rows))})", parameters


async def _delete_commands(tx: Connection, cutoff: float, cursors: Sequence[Sequence[Any]]) -> int:
    """A command goes with its delivered deliveries and its attempts.

    Which of ``cursors`` still qualify is asked again first (deleting the deliveries changes the
    answer); a delivery made pending again meanwhile keeps its command, and then its attempts.
    """
    selected, parameters = _key_match(("c.cursor",), cursors)
    keys = await tx.fetch(
        f"SELECT c.cursor FROM commands c WHERE {_DELIVERED_AND_ACKNOWLEDGED} AND {selected}", [cutoff, *parameters]
    )
    if not keys:
        return 0
    match, parameters = _key_match(("cursor",), keys)
    await tx.execute(f"DELETE FROM command_deliveries WHERE state = 'delivered' AND {match}", parameters)
    removed = await tx.execute(
        f"DELETE FROM commands WHERE {match}"
        " AND NOT EXISTS (SELECT 1 FROM command_deliveries d WHERE d.cursor = commands.cursor)",
        parameters,
    )
    await tx.execute(
        f"DELETE FROM command_attempts WHERE {match}"
        " AND NOT EXISTS (SELECT 1 FROM commands c WHERE c.cursor = command_attempts.cursor)",
        parameters,
    )
    return removed


async def _delete_matching(tx: Connection, step: _Step, cutoff: float, keys: Sequence[Sequence[Any]]) -> int:
    """Delete the rows with these keys that still meet the step's condition (a row touched since stays)."""
    aliased = [f"{step.alias}.{column}" for column in step.key]
    match, parameters = _key_match(aliased, keys)
    columns = step.key[0] if len(step.key) == 1 else f"({', '.join(step.key)})"
    return await tx.execute(
        f"DELETE FROM {step.table} WHERE {columns} IN (SELECT {', '.join(aliased)}"
        f" FROM {step.table} {step.alias} WHERE {step.condition} AND {match})",
        [cutoff, *parameters],
    )


async def _purge_batch(db: Database, step: _Step, cutoff: float, batch_size: int) -> tuple[int, bool]:
    """Forget up to ``batch_size`` rows of ``step``; (rows removed, whether more may remain)."""
    keys = ", ".join(f"{step.alias}.{column}" for column in step.key)
    async with db.transaction(*step.locks) as tx:
        rows = await tx.fetch(
            f"SELECT {keys} FROM {step.table} {step.alias} WHERE {step.condition} LIMIT ?", (cutoff, batch_size)
        )
        if not rows:
            return 0, False
        if step is _COMMANDS:
            removed = await _delete_commands(tx, cutoff, rows)
        else:
            removed = await _delete_matching(tx, step, cutoff, rows)
    return removed, len(rows) == batch_size


# progress(table, rows removed so far, finished)
Progress = Callable[[str, int, bool], None]


async def purge(
    db: Database,
    policy: RetentionPolicy,
    now: float,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Forget what ``policy`` says is too old; rows removed per table (tables with nothing to do included)."""
    removed: dict[str, int] = {}
    for step, age in _steps(policy):
        cutoff = now - age
        total, more = 0, True
        while more:
            count, more = await _purge_batch(db, step, cutoff, batch_size)
            total += count
            if progress is not None:
                progress(step.table, total, not more)
        removed[step.table] = total
    return removed


async def count_purgeable(db: Database, policy: RetentionPolicy, now: float) -> dict[str, int]:
    """What ``purge`` would remove now, per table, without removing it (``mtsg purge --dry-run``)."""
    counts: dict[str, int] = {}
    for step, age in _steps(policy):
        row = await db.fetchone(f"SELECT COUNT(*) FROM {step.table} {step.alias} WHERE {step.condition}", (now - age,))
        counts[step.table] = int(row[0]) if row else 0
    return counts
