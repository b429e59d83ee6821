"""SQLite behind the ``Database`` seam (aiosqlite, WAL): the embedded default for one gateway process.

Three connections serve the process.  A login's reads and its write, units that run
to their end in one step, each have a plain connection used on the event loop
(``run_reads``, ``loop_commit``).  Everything else (admin, imports, retention) goes
through aiosqlite, which runs its statements on one thread; coroutines interleave
between awaits, so every such write (a transaction, an autocommit statement, a
staging batch) holds ``_write_lock``: without it two callers could share one
BEGIN..COMMIT.  The same lock, through a lock file, makes
the other processes on the file (``mtsg serve --workers``, the CLI) wait their
turn without SQLite's sleeping busy handler (``sqlite_write_lock``).  SQLite allows
one writer at a time anyway, so the named locks of ``transaction`` need nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import aiosqlite
import structlog

from gateway.store.database import ChangeListener, Connection, Result, Row, Unit
from gateway.store.errors import StoreUnavailableError
from gateway.store.loop_commit import LoopCommitter
from gateway.store.migrate import load_migrations
from gateway.store.one_step import CONNECTION_PRAGMAS, connect_plain, read_in_one_step
from gateway.store.sqlite_write_lock import WriteLock

log = structlog.get_logger(__name__)

# IS DISTINCT FROM (3.39) and RETURNING (3.35) are used by the shared SQL.
MINIMUM_SQLITE = (3, 39, 0)


def _in_wal_mode(path: Path) -> bool:
    """Whether the file's header says WAL (bytes 18 and 19 are 2), read without SQLite and its locks."""
    with path.open("rb") as file:
        header = file.read(20)
    return len(header) == 20 and header[18] == header[19] == 2


class _Statements:
    """Statements on one aiosqlite connection, driver errors turned into StoreUnavailableError."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection

    async def fetch(self, sql: str, parameters: Sequence[Any] = ()) -> list[Row]:
        """All rows in one trip to the connection's thread.

        Executing and fetching in separate trips would let another coroutine's BEGIN
        IMMEDIATE run while this statement holds a read snapshot open; once another
        process has committed since, SQLite refuses that BEGIN (SQLITE_BUSY_SNAPSHOT).
        """
        try:
            return [tuple(row) for row in await self._db.execute_fetchall(sql, tuple(parameters))]
        except sqlite3.Error as error:
            raise StoreUnavailableError(str(error)) from error

    async def fetchone(self, sql: str, parameters: Sequence[Any] = ()) -> Row | None:
        rows = await self.fetch(sql, parameters)
        return rows[0] if rows else None

    async def _execute(self, sql: str, parameters: Sequence[Any]) -> int:
        try:
            async with self._db.execute(sql, tuple(parameters)) as cursor:
                return cursor.rowcount
        except sqlite3.Error as error:
            raise StoreUnavailableError(str(error)) from error

    async def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            await self._db.executemany(sql, rows)
        except sqlite3.Error as error:
            raise StoreUnavailableError(str(error)) from error

    async def notify(self, topic: str) -> None:
        """One process shares one store: the writer has already told itself."""

    async def batches(self, sql: str, size: int) -> AsyncIterator[list[Row]]:
        try:
            async with self._db.execute(sql) as cursor:
                while rows := await cursor.fetchmany(size):
                    yield [tuple(row) for row in rows]
        except sqlite3.Error as error:
            raise StoreUnavailableError(str(error)) from error


class _InTransaction(_Statements):
    """The connection inside a transaction: the write lock is held already."""

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> int:
        return await self._execute(sql, parameters)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._executemany(sql, rows)


def _create_private(path: Path) -> None:
    """Make a missing database file (and its directory) readable by this user only.

    The store holds customers' verdicts, devices and hashed phone numbers; under the usual umask a
    file SQLite creates is world-readable.  SQLite gives the -wal and -shm files the database file's
    permissions, so they follow.  An existing file keeps the permissions its owner chose.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


# Set while this task has a transaction open on the shared connection: its own reads run in it.
_IN_OWN_TRANSACTION: ContextVar[bool] = ContextVar("mtsg_sqlite_in_own_transaction", default=False)


class SQLiteDatabase(_Statements):
    backend = "sqlite"

    def __init__(
        self,
        connection: aiosqlite.Connection,
        path: Path,
        write_lock: WriteLock,
        writes: LoopCommitter,
        reads: sqlite3.Connection,
    ) -> None:
        super().__init__(connection)
        self.path = path
        self._write_lock = write_lock
        self._clean_ups: set[asyncio.Task[None]] = set()
        self._session_lock = asyncio.Lock()
        # One-step units (gateway.store.one_step) on the loop: the writes' COMMIT alone goes to a thread.
        self._writes = writes
        self._reads = reads

    @classmethod
    async def open(cls, path: Path) -> SQLiteDatabase:
        """The database at ``path``, created if missing; StoreUnavailableError, with nothing left open, if not."""
        if sqlite3.sqlite_version_info < MINIMUM_SQLITE:
            raise StoreUnavailableError(
                f"SQLite {sqlite3.sqlite_version} is too old; mtsg needs {'.'.join(map(str, MINIMUM_SQLITE))} or later"
            )
        try:
            _create_private(path)
            first_open = not _in_wal_mode(path)
        except OSError as error:
            raise StoreUnavailableError(f"cannot open SQLite database {path}: {error}") from error
        try:
            write_lock = WriteLock(path)
        except OSError as error:
            raise StoreUnavailableError(f"cannot use SQLite database {path}: {error}") from error
        async with contextlib.AsyncExitStack() as opened:  # closes what was opened if a later step fails
            opened.callback(write_lock.close)
            if first_open:
                # Two openers putting one new file in WAL mode at once (two gateways, or `mtsg migrate`
                # beside a starting `mtsg serve`) can deadlock inside SQLite, which then tells one
                # "database is locked" at once, busy timeout or not: 2 of 12 starts of two gateways.
                # So a file not yet in WAL mode is opened by one opener at a time.
                await opened.enter_async_context(write_lock)
            try:
                connection = await aiosqlite.connect(path, isolation_level=None)
            except sqlite3.Error as error:
                raise StoreUnavailableError(f"cannot open SQLite database {path}: {error}") from error
            opened.push_async_callback(connection.close)
            try:
                await connection.execute("PRAGMA journal_mode=WAL")
                for pragma in CONNECTION_PRAGMAS:
                    await connection.execute(pragma)
                writes = LoopCommitter(path)
                opened.push_async_callback(writes.close)
                reads = connect_plain(path)
            except (OSError, sqlite3.Error) as error:
                raise StoreUnavailableError(f"cannot use SQLite database {path}: {error}") from error
            if first_open:
                write_lock.release()
            opened.pop_all()
        return cls(connection, path, write_lock, writes, reads)

    @staticmethod
    def skip_locked(alias: str) -> str:
        """Claims already run under the one writer's lock."""
        return ""

    async def fetch(self, sql: str, parameters: Sequence[Any] = ()) -> list[Row]:
        """A read on the shared connection waits while another task has a transaction open on it.

        Run inside that transaction, it would see the transaction's rows before they were
        committed, and keep them if it then rolled back: the blocklist refresher built its
        matcher from an import's merge before the merge committed.
        """
        if not _IN_OWN_TRANSACTION.get():
            await self._write_lock.wait_for_local_writers()
        return await super().fetch(sql, parameters)

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> int:
        async with self._write_lock:
            return await self._execute(sql, parameters)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self._write_lock:
            await self._executemany(sql, rows)

    @asynccontextmanager
    async def transaction(self, *locks: str, connection: Connection | None = None) -> AsyncIterator[Connection]:
        """BEGIN IMMEDIATE .. COMMIT under the write lock; rolled back on any error.

        A caller that gives up (its deadline, a cancelled call) must not wait for the
        database: its statement still runs on the connection's thread, possibly waiting
        out another process's lock.  So a cancelled transaction is rolled back in the
        background, and the write lock passes to that clean-up until it is done; nobody
        else can start a transaction on the connection meanwhile.
        """
        await self._write_lock.acquire()
        own = _IN_OWN_TRANSACTION.set(True)
        try:
            async with self._begun() as statements:
                yield statements
        finally:
            _IN_OWN_TRANSACTION.reset(own)

    @asynccontextmanager
    async def _begun(self) -> AsyncIterator[Connection]:
        """BEGIN IMMEDIATE .. COMMIT, the write lock held already; releases it (or hands it to the clean-up)."""
        begin = asyncio.ensure_future(self._db.execute("BEGIN IMMEDIATE"))
        try:
            await asyncio.shield(begin)
        except asyncio.CancelledError:
            self._clean_up_after(begin)
            raise
        except sqlite3.Error as error:
            self._write_lock.release()
            raise StoreUnavailableError(str(error)) from error
        try:
            yield _InTransaction(self._db)
            if self._db.in_transaction:
                await asyncio.shield(self._db.commit())
        except asyncio.CancelledError:
            self._clean_up_after(None)
            raise
        except BaseException as error:
            try:
                if self._db.in_transaction:
                    await self._db.rollback()
            finally:
                self._write_lock.release()
            if isinstance(error, sqlite3.Error):
                raise StoreUnavailableError(str(error)) from error
            raise
        self._write_lock.release()

    def _clean_up_after(self, pending: asyncio.Future[Any] | None) -> None:
        """Wait for ``pending`` and roll back in the background, then hand the write lock on."""

        async def clean_up() -> None:
            try:
                if pending is not None:
                    with contextlib.suppress(sqlite3.Error):
                        await pending
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        await self._db.rollback()
            finally:
                self._write_lock.release()

        task = asyncio.get_running_loop().create_task(clean_up())
        self._clean_ups.add(task)
        task.add_done_callback(self._clean_ups.discard)

    async def run_in_transaction(self, unit: Unit[Result], *locks: str) -> Result:
        """``unit`` in the next shared transaction (``loop_commit``): one transaction, one fsync and
        one turn of the lock for every unit waiting, each in its own savepoint."""
        return await self._writes.run(unit)

    async def apply_pragma(self, pragma: str) -> None:
        """``PRAGMA <pragma>`` on every connection of this database (some pragmas hold per connection)."""
        await self._execute(f"PRAGMA {pragma}", ())
        await self._writes.run(lambda tx: tx.execute(f"PRAGMA {pragma}"))
        self._reads.execute(f"PRAGMA {pragma}")

    async def run_reads(self, unit: Unit[Result]) -> Result:
        """``unit`` in one read transaction (one snapshot), run to its end right here on the event loop.

        A login's reads are a handful of look-ups by index: a short run of SQLite's C code on
        cached pages.  Handing them to a thread cost more than doing them: the trip itself on an
        idle gateway, and under load a wait for the thread and then for the GIL, while the loop
        ran other logins.  In WAL mode a reader takes no lock that a
        writer holds, so these statements never wait for another process's write; they wait only
        while a connection recovers the WAL index after a crash.  What stays on the loop is reading a
        page that is not in memory from the disk.
        """
        try:
            return read_in_one_step(self._reads, unit)
        except sqlite3.Error as error:
            raise StoreUnavailableError(str(error)) from error

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Connection]:
        """The one connection: TEMP tables live on it, and each write on it takes the write lock.

        Every session gets the same connection, so the same TEMP tables: two at once (a feed sync
        and an ImportBundle call, say) emptied each other's staged rows, and an import could merge
        nothing and still record its bundle as applied.  One session at a time.
        """
        async with self._session_lock:
            yield self

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Connection]:
        """A second, read-only connection in a deferred transaction: WAL keeps its view fixed while
        the main connection goes on writing, and its statements run on their own thread."""
        try:
            reader = await aiosqlite.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
        except sqlite3.Error as error:
            raise StoreUnavailableError(f"cannot open SQLite database {self.path}: {error}") from error
        try:
            await reader.execute("BEGIN")
            yield _InTransaction(reader)
        except sqlite3.Error as error:
            raise StoreUnavailableError(str(error)) from error
        finally:
            await reader.close()

    async def listen(self, listener: ChangeListener) -> None:
        """Nothing to listen to: other processes (the CLI) are seen by the refreshers' polling."""

    async def migrate(self, progress: Callable[[str], None] | None = None) -> list[str]:
        """Apply the missing migrations, reading which are missing under the write lock that applies them.

        Read outside it, two processes migrating one file at once (an operator's ``mtsg migrate``
        beside a starting ``mtsg serve``) both found a version missing, and the second failed on
        the tables the first had just made ("table commands already exists").
        """
        async with self._write_lock:
            await self._execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)",
                (),
            )
            # The plain read: this class's own waits for local writers, and this is one.
            applied = {row[0] for row in await super().fetch("SELECT version FROM schema_migrations")}
            done: list[str] = []
            for migration in load_migrations("sqlite"):
                if migration.version in applied:
                    continue
                log.info("applying schema migration", version=migration.version, name=migration.name, db=str(self.path))
                if progress is not None:
                    progress(f"{migration.version:04d}_{migration.name}")
                await self._apply(migration.version, migration.name, migration.sql)
                done.append(f"{migration.version:04d}_{migration.name}")
        return done

    async def _apply(self, version: int, name: str, sql: str) -> None:
        """One migration and its row in schema_migrations, in one transaction; the write lock is held."""
        script = (
            "BEGIN IMMEDIATE;\n"
            f"{sql}\n"
            "INSERT INTO schema_migrations (version, name, applied_at) "
            f"VALUES ({version}, '{name}', {time.time()});\n"
            "COMMIT;"
        )
        try:
            await self._db.executescript(script)
        except sqlite3.Error as error:
            if self._db.in_transaction:
                await self._db.rollback()
            raise StoreUnavailableError(f"migration {version:04d} failed: {error}") from error

    async def columns(self, table: str) -> list[str]:
        return [row[0] for row in await self.fetch("SELECT name FROM pragma_table_info(?) ORDER BY cid", (table,))]

    async def after_bulk_load(self, tx: Connection) -> None:
        """Nothing: SQLite's AUTOINCREMENT counters follow the largest key inserted, copied or not."""

    async def schema_version(self) -> int:
        row = await self.fetchone("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        return int(row[0]) if row else 0

    async def close(self) -> None:
        if self._clean_ups:  # a cancelled transaction is still being rolled back
            await asyncio.gather(*self._clean_ups, return_exceptions=True)
        await self._db.close()
        await self._writes.close()
        self._reads.close()
        self._write_lock.close()
