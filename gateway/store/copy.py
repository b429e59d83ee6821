"""Moving an installation from one backend to another (``mtsg store copy``) without losing a row.

The source is read from one snapshot, so a gateway still writing to it cannot
tear the copy; the target is written in one transaction, so a failed copy leaves
it empty, never half full.  Every table is counted and checksummed on both sides:
the source as it is read, the target read back once committed.  The checksum
is the sum of each row's SHA-256 (mod 2^256): it does not depend on row order,
which the two engines' text collations would disagree on, and numbers are
compared as numbers (SQLite may hand back 5 where PostgreSQL hands back 5.0).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.store.database import Database
from gateway.store.migrate import load_migrations, schema_version_or_zero
from gateway.store.sql_store import SINGLETON_TABLES, TABLES

COPY_BATCH = 5000
_MODULUS = 1 << 256


class CopyError(RuntimeError):
    """The copy cannot start (schema, a target that is not empty) or did not match; nothing is lost."""


@dataclass(frozen=True, slots=True)
class TableCopy:
    table: str
    source_rows: int
    target_rows: int
    source_checksum: str
    target_checksum: str

    @property
    def matches(self) -> bool:
        return self.source_rows == self.target_rows and self.source_checksum == self.target_checksum


def _canonical(value: Any) -> str:
    if value is None:
        return "N"
    if isinstance(value, bool):
        return f"n{int(value)}"
    if isinstance(value, int):
        return f"n{value}"
    if isinstance(value, float):
        return f"n{int(value)}" if value.is_integer() and abs(value) < 2**53 else f"f{value.hex()}"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"b{bytes(value).hex()}"
    text = str(value)
    return f"s{len(text)}:{text}"


def row_digest(row: Sequence[Any]) -> int:
    encoded = "\x1f".join(_canonical(value) for value in row).encode()
    return int.from_bytes(hashlib.sha256(encoded).digest(), "big")


async def table_checksum(db: Database, table: str, columns: Sequence[str]) -> tuple[int, str]:
    """(rows, checksum) of ``table`` over ``columns``, read from a snapshot."""
    count, total = 0, 0
    async with db.snapshot() as snapshot:
        async for batch in snapshot.batches(f"SELECT {', '.join(columns)} FROM {table}", COPY_BATCH):
            count, total = count + len(batch), _added(total, batch)
    return count, f"{total:064x}"


def _added(total: int, batch: Sequence[Sequence[Any]]) -> int:
    return (total + sum(row_digest(row) for row in batch)) % _MODULUS


async def check_source(source: Database) -> None:
    """CopyError unless ``source`` is an mtsg store at this build's schema: checked before a target is made."""
    latest = len(load_migrations(source.backend))
    version = await schema_version_or_zero(source)
    if version == 0:
        raise CopyError("the source holds no mtsg store: no mtsg has migrated it (is --from the right database?)")
    if version > latest:
        raise CopyError(
            f"the source is at schema version {version}, newer than this mtsg's {latest}: copy it with the release"
            " that migrated it, which knows every table and column it has"
        )
    if version < latest:
        raise CopyError(
            f"the source is at schema version {version}, this mtsg at {latest}: run `mtsg migrate` on it first"
        )


async def _check_target_is_empty(target: Database) -> None:
    for table in TABLES:
        if table == "blocklist_state":
            row = await target.fetchone("SELECT version FROM blocklist_state")
            if row is not None and row[0] != 0:
                raise CopyError("the target's registry is not empty; copy only into a fresh database")
            continue
        if table in SINGLETON_TABLES:
            continue
        row = await target.fetchone(f"SELECT COUNT(*) FROM {table}")
        if row is not None and row[0]:
            raise CopyError(f"the target is not empty ({row[0]} rows in {table}); copy only into a fresh database")


async def _columns(source: Database, target: Database) -> dict[str, list[str]]:
    columns: dict[str, list[str]] = {}
    for table in TABLES:
        theirs, ours = await source.columns(table), await target.columns(table)
        if sorted(theirs) != sorted(ours):
            raise CopyError(f"{table}: the source has columns {theirs}, the target {ours}")
        columns[table] = theirs
    return columns


async def copy_store(source: Database, target: Database, progress: Callable[[str, int, bool], None]) -> list[TableCopy]:
    """Copy every table of ``source`` into the empty, migrated ``target``; then count and checksum both.

    The source's side is counted as it is copied, from the same snapshot: a gateway still
    writing to it (an online backup) adds rows the copy rightly does not have, and a second
    read of the source would call that a mismatch.  ``progress(table, rows_so_far, finished)``
    hears each batch.
    """
    await check_source(source)
    await _check_target_is_empty(target)
    columns = await _columns(source, target)
    read: dict[str, tuple[int, int]] = {}
    async with source.snapshot() as snapshot, target.transaction("blocklist", "policy", "commands") as tx:
        for table in SINGLETON_TABLES:
            await tx.execute(f"DELETE FROM {table}")  # the migration's initial row; the source's replaces it
        for table in TABLES:
            names = columns[table]
            insert = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
            copied, total = 0, 0
            async for batch in snapshot.batches(f"SELECT {', '.join(names)} FROM {table}", COPY_BATCH):
                await tx.executemany(insert, batch)
                copied, total = copied + len(batch), _added(total, batch)
                progress(table, copied, False)
            progress(table, copied, True)
            read[table] = copied, total
        await target.after_bulk_load(tx)
    results: list[TableCopy] = []
    for table in TABLES:
        source_rows, source_total = read[table]
        target_rows, target_sum = await table_checksum(target, table, columns[table])
        results.append(TableCopy(table, source_rows, target_rows, f"{source_total:064x}", target_sum))
    return results
