"""Running the store's async SQL code to its end in one step, without ever suspending.

A login's reads and its transaction are a handful of statements each.  Through aiosqlite
every statement is a trip from the event loop to the connection's thread and back, and a
write transaction holds the write lock across all those trips, while the loop spends
milliseconds on other requests between them.  Under load the lock was held for the
whole of those waits and logins queued behind it.

The store's code is written once, as coroutines over the ``Connection`` seam, for both
backends.  ``StepConnection`` gives that code a plain ``sqlite3`` connection whose async
methods never suspend, so the coroutine can be driven from start to end with a single
``send``: one unit of work at a time on the connection, and the lock held only for the SQL
itself.  On SQLite these units run on the event loop (``SQLiteDatabase.run_reads``,
``loop_commit``); only a COMMIT, and any wait for another writer, go to a thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Coroutine, Iterable, Sequence
from pathlib import Path
from typing import Any

from gateway.store.database import Result, Row, Unit

# Every connection to the store's file, the aiosqlite one and the plain ones alike.  FULL: a
# committed verdict survives power loss, not only a process crash.  temp_store=MEMORY: each unit
# of a shared transaction runs in a SAVEPOINT, whose journal SQLite otherwise spills past 64 KiB
# to a new file in /var/tmp, once per transaction and some two dozen writes a login; in memory it
# needs no writable temporary directory either.  It holds one unit's changed pages at a time.
CONNECTION_PRAGMAS = (
    "PRAGMA synchronous=FULL",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)


def connect_plain(path: Path) -> sqlite3.Connection:
    """A plain connection for a thread of its own, with the settings of the store's main connection."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        for pragma in CONNECTION_PRAGMAS:
            connection.execute(pragma)
    except sqlite3.Error:
        connection.close()
        raise
    return connection


class SuspendedError(RuntimeError):
    """Code run in one step awaited something other than this connection's statements."""


class StepConnection:
    """The ``Connection`` seam over a ``sqlite3`` connection, for code run by ``run_to_end``."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    async def fetch(self, sql: str, parameters: Sequence[Any] = ()) -> list[Row]:
        return [tuple(row) for row in self._connection.execute(sql, tuple(parameters)).fetchall()]

    async def fetchone(self, sql: str, parameters: Sequence[Any] = ()) -> Row | None:
        rows = await self.fetch(sql, parameters)
        return rows[0] if rows else None

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> int:
        return self._connection.execute(sql, tuple(parameters)).rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._connection.executemany(sql, rows)

    async def notify(self, topic: str) -> None:
        """One process shares one store: the writer tells itself after the commit."""

    def batches(self, sql: str, size: int) -> AsyncIterator[list[Row]]:
        raise SuspendedError("reading in batches does not fit in one step")


def run_to_end(work: Coroutine[Any, Any, Result]) -> Result:
    """Drive ``work`` to its result; it must not suspend (only StepConnection's statements awaited)."""
    try:
        work.send(None)
    except StopIteration as finished:
        return finished.value  # type: ignore[no-any-return]
    work.close()
    raise SuspendedError("store code suspended inside a one-step unit of work")


def read_in_one_step(connection: sqlite3.Connection, unit: Unit[Result]) -> Result:
    """``unit``'s reads in one transaction on ``connection``: one snapshot for all its statements."""
    connection.execute("BEGIN")
    try:
        return run_to_end(unit(StepConnection(connection)))
    finally:
        connection.execute("COMMIT")
