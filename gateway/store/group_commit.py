"""Group commit for SQLite: the writes of many logins in one transaction, on one thread, one fsync.

Each login's write is a small unit (verdict, device, location, inventory, nonce, maybe a
command).  Run one transaction per login and every handoff of the write lock goes
through the event loop, which under load is busy for milliseconds with other requests
before it resumes the holder and wakes the next: a login waited ~200 ms for the lock
while the SQL took a fraction of a millisecond (issue 3).  Here the units queue for one
writer thread that owns its connection; it takes everything waiting (up to
``MAX_UNITS``), runs it in one BEGIN IMMEDIATE .. COMMIT with each unit inside its own
SAVEPOINT, so a unit that fails (a replayed nonce, the safety valve) is rolled back
alone, and then answers every caller.

Other writers of the file (the event loop's own transactions, other processes) are
kept out by the writer's ``flock`` on the lock file, taken on its own descriptor so it
excludes this process's other writers too (``sqlite_write_lock``).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import queue
import sqlite3
import threading
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
class _Pending:
    unit: Unit[Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    # Set by the caller that gave up (its deadline): a unit not yet run is then skipped.
    abandoned: bool = False


@dataclass(frozen=True)
class _Outcome:
    pending: _Pending
    result: Any = None
    error: BaseException | None = None


def _settle(future: asyncio.Future[Any], outcome: _Outcome) -> None:
    if future.done():  # the caller was cancelled
        return
    if outcome.error is not None:
        future.set_exception(outcome.error)
    else:
        future.set_result(outcome.result)


def _as_store_error(error: BaseException) -> BaseException:
    return StoreUnavailableError(str(error)) if isinstance(error, sqlite3.Error) else error


class GroupCommitter:
    def __init__(self, database: Path) -> None:
        self._path = database
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="mtsg-sqlite-writer", daemon=True)
        self._thread.start()

    async def run(self, unit: Unit[Result]) -> Result:
        """Run ``unit`` in the next group's transaction; its result, or its error (driver errors as
        StoreUnavailableError), once the group has committed."""
        loop = asyncio.get_running_loop()
        pending = _Pending(unit, loop, loop.create_future())
        self._queue.put(pending)
        try:
            return await pending.future  # type: ignore[no-any-return]
        except asyncio.CancelledError:
            pending.abandoned = True
            raise

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _serve(self) -> None:
        connection = connect_plain(self._path)
        lock = os.open(lock_file_path(self._path), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while (batch := self._next_batch()) is not None:
                live = [item for item in batch if not item.abandoned]
                try:
                    outcomes = self._commit(connection, lock, live)
                except Exception as error:  # the thread must outlive any failure, or callers wait for ever
                    failed = StoreUnavailableError(f"group commit failed: {error}")
                    outcomes = [_Outcome(item, error=failed) for item in live]
                for outcome in outcomes:
                    outcome.pending.loop.call_soon_threadsafe(_settle, outcome.pending.future, outcome)
        finally:
            connection.close()
            os.close(lock)

    def _next_batch(self) -> list[_Pending] | None:
        """Wait for a unit, then take every unit already waiting (None: closing)."""
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < MAX_UNITS:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # close after this batch
                break
            batch.append(item)
        return batch

    def _commit(self, connection: sqlite3.Connection, lock: int, batch: list[_Pending]) -> list[_Outcome]:
        if not batch:
            return []
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as error:
                return [_Outcome(item, error=_as_store_error(error)) for item in batch]
            outcomes = []
            for item in batch:
                outcome = self._run_unit(connection, item)
                if not connection.in_transaction:
                    # SQLite rolled the whole transaction back (a full disk, an I/O error): the units
                    # that went before are lost with it, so none of them may report success.
                    lost = _as_store_error(outcome.error) if outcome.error else StoreUnavailableError("rolled back")
                    return [_Outcome(each, error=lost) for each in batch]
                outcomes.append(outcome)
            try:
                connection.execute("COMMIT")
            except sqlite3.Error as error:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                failed = _as_store_error(error)
                return [outcome if outcome.error else _Outcome(outcome.pending, error=failed) for outcome in outcomes]
            return outcomes
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def _run_unit(connection: sqlite3.Connection, item: _Pending) -> _Outcome:
        connection.execute("SAVEPOINT unit")
        try:
            result = run_to_end(item.unit(StepConnection(connection)))
        except Exception as error:
            if connection.in_transaction:  # else SQLite has rolled everything back already
                connection.execute("ROLLBACK TO unit")
                connection.execute("RELEASE unit")
            return _Outcome(item, error=_as_store_error(error))
        connection.execute("RELEASE unit")
        return _Outcome(item, result=result)
