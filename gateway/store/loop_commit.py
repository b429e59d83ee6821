"""Group commit for SQLite with the SQL on the event loop and only the COMMIT on a thread.

A login's write is a handful of statements (verdict, device, location, inventory, nonce).
Run on a writer thread, each statement gave the GIL up and had to win it back from the
event loop, which under load holds it for up to the interpreter's switch interval (5 ms):
a unit of seven statements waited many times longer than its SQL took, and the logins queued
behind it.

Here the statements run on the loop, which holds the GIL anyway: they are C work on pages
in memory, like the login's reads (``SQLiteDatabase.run_reads``).  What may wait stays
off the loop: the COMMIT, which writes the WAL and fsyncs it (and, now and then, runs a
checkpoint), goes to a thread of its own; and the lock file that keeps other writers out
(``sqlite_write_lock``) is taken without waiting, or else waited for on a thread.

Units that arrive while a COMMIT is under way wait, and then run together in the next
transaction: one COMMIT, one fsync and one turn of the lock for all of them.  Each unit
runs inside its own SAVEPOINT, so a unit that fails (a replayed nonce, the safety valve)
is rolled back alone.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.store.database import Result, Unit
from gateway.store.errors import StoreUnavailableError
from gateway.store.one_step import StepConnection, connect_plain, run_to_end
from gateway.store.sqlite_write_lock import lock_file_path

# Units per transaction: enough to drain a burst, few enough that one commit stays short.
MAX_UNITS = 256


@dataclass
class _Waiting:
    unit: Unit[Any]
    future: asyncio.Future[Any]


def _as_store_error(error: BaseException) -> BaseException:
    return StoreUnavailableError(str(error)) if isinstance(error, sqlite3.Error) else error


class LoopCommitter:
    """Runs units of work in shared transactions on the loop's connection; commits on a thread."""

    def __init__(self, database: Path) -> None:
        self._connection = connect_plain(database)
        try:
            self._lock = os.open(lock_file_path(database), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            self._connection.close()
            raise
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mtsg-sqlite-commit")
        self._waiting: list[_Waiting] = []
        self._busy = False  # a transaction is being filled, begun or committed: newcomers wait
        self._drainer: asyncio.Task[None] | None = None

    async def run(self, unit: Unit[Result]) -> Result:
        """``unit``'s result, or its error (driver errors as StoreUnavailableError), once committed."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(unit, future))
        if not self._busy:
            self._busy = True
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        """Transactions, one after another, until nobody waits."""
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_UNITS], self._waiting[MAX_UNITS:]
                live = [waiting for waiting in batch if not waiting.future.done()]  # a caller may have gone
                if live:
                    await self._transaction(live)
        finally:
            self._busy = False

    async def _transaction(self, batch: list[_Waiting]) -> None:
        try:
            await self._take_lock()
        except OSError as error:
            self._settle_all(batch, StoreUnavailableError(f"cannot take the write lock: {error}"))
            return
        try:
            outcomes = await self._fill_and_commit(batch)
        except asyncio.CancelledError:
            # The loop is shutting down; a COMMIT under way finishes on its thread (``close`` waits for it).
            self._settle_all(batch, StoreUnavailableError("the store is closing"))
            raise
        except Exception as error:
            if self._connection.in_transaction:
                self._connection.execute("ROLLBACK")
            self._settle_all(batch, _as_store_error(error))
            return
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
        for waiting, (result, failure) in zip(batch, outcomes, strict=True):
            _settle(waiting.future, result, failure)

    async def _fill_and_commit(self, batch: list[_Waiting]) -> list[tuple[Any, BaseException | None]]:
        await self._begin()
        outcomes = []
        for waiting in batch:
            outcome = self._run_unit(waiting)
            if not self._connection.in_transaction:
                # SQLite rolled the whole transaction back (a full disk, an I/O error): the units that
                # went before are lost with it, so none of them may report success.
                error = outcome[1]
                raise error if isinstance(error, StoreUnavailableError) else StoreUnavailableError("rolled back")
            outcomes.append(outcome)
        await asyncio.get_running_loop().run_in_executor(self._committer, self._connection.execute, "COMMIT")
        return outcomes

    async def _take_lock(self) -> None:
        """The lock file at once if it is free, else waited for on a thread: never on the loop."""
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            await asyncio.get_running_loop().run_in_executor(self._committer, fcntl.flock, self._lock, fcntl.LOCK_EX)

    async def _begin(self) -> None:
        """BEGIN IMMEDIATE on the loop; a program that writes without the lock file is waited for on a thread."""
        self._connection.execute("PRAGMA busy_timeout=0")
        try:
            self._connection.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                raise
        finally:
            self._connection.execute("PRAGMA busy_timeout=5000")
        await asyncio.get_running_loop().run_in_executor(self._committer, self._connection.execute, "BEGIN IMMEDIATE")

    def _run_unit(self, waiting: _Waiting) -> tuple[Any, BaseException | None]:
        connection = self._connection
        connection.execute("SAVEPOINT unit")
        try:
            result = run_to_end(waiting.unit(StepConnection(connection)))
        except Exception as error:
            if connection.in_transaction:  # else SQLite has rolled everything back already
                connection.execute("ROLLBACK TO unit")
                connection.execute("RELEASE unit")
            return None, _as_store_error(error)
        connection.execute("RELEASE unit")
        return result, None

    @staticmethod
    def _settle_all(batch: list[_Waiting], error: BaseException) -> None:
        for waiting in batch:
            _settle(waiting.future, None, error)

    async def close(self) -> None:
        """After the transactions under way; their callers get their answers first."""
        if self._drainer is not None:
            await asyncio.gather(self._drainer, return_exceptions=True)
        self._committer.shutdown(wait=True)
        self._connection.close()
        os.close(self._lock)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
