"""PostgreSQL behind the ``Database`` seam (asyncpg): several replicas on one database.

Replicas write at the same time, so what SQLite gets from its single writer is
asked for explicitly: a transaction names the advisory locks it needs (held until
it commits), which keeps registry and policy versions and the command feed's
cursor in commit order.  Claims of the outbox skip rows another replica is
claiming (``FOR UPDATE SKIP LOCKED``).  A committed change is announced with
NOTIFY; a listener on its own connection passes it on, and after a lost
connection it reports every topic as changed, because what was sent meanwhile
is gone.  Polling in the refreshers stays the safety net.

Every statement is cut at ``store.statement_timeout_seconds`` (asyncpg's command timeout):
without it, a connection that hears nothing back (a failover that moved the database's
address, a black-holed network) held whatever waited on it, the command push included,
until the kernel gave up on the connection many minutes later.  Bulk work on a session (an
import's merge) and migrations may run longer: their statements get ``BULK_STATEMENT_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import asyncpg
import structlog

from gateway.store.database import (
    TOPICS,
    ChangeListener,
    Connection,
    Result,
    Row,
    Unit,
    changed_rows,
    lock_key,
    numbered_placeholders,
    redact,
)
from gateway.store.errors import StoreUnavailableError
from gateway.store.migrate import load_migrations

log = structlog.get_logger(__name__)

CHANNEL = "mtsg_changes"
# How the listening connection shows in pg_stat_activity (operators and tests find it by this).
LISTENER_APPLICATION_NAME = "mtsg-listener"
DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)
_LISTENER_HEARTBEAT_SECONDS = 2.0
_RECONNECT_MAX_SECONDS = 5.0
_ACQUIRE_TIMEOUT_SECONDS = 10.0
# An import's merge of a million rows, or a migration building an index, is not cut at the usual bound.
BULK_STATEMENT_SECONDS = 3600.0
# Giving a connection back resets it (a few statements); a connection that cannot be reset in this long is closed.
_RELEASE_TIMEOUT_SECONDS = 5.0


@lru_cache(maxsize=512)
def _sql(sql: str) -> str:
    return numbered_placeholders(sql)


def _unavailable(error: BaseException) -> StoreUnavailableError:
    return StoreUnavailableError(f"PostgreSQL: {type(error).__name__}: {error}")


class _Statements:
    """Statements on a pool or on one held connection; ``timeout`` None: the pool's statement timeout."""

    def __init__(self, target: asyncpg.Pool | asyncpg.Connection, timeout: float | None = None) -> None:
        self._target = target
        self._timeout = timeout

    async def fetch(self, sql: str, parameters: Sequence[Any] = ()) -> list[Row]:
        try:
            records = await self._target.fetch(_sql(sql), *parameters, timeout=self._timeout)
            return [tuple(record) for record in records]
        except DRIVER_ERRORS as error:
            raise _unavailable(error) from error

    async def fetchone(self, sql: str, parameters: Sequence[Any] = ()) -> Row | None:
        rows = await self.fetch(sql, parameters)
        return rows[0] if rows else None

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> int:
        try:
            return changed_rows(await self._target.execute(_sql(sql), *parameters, timeout=self._timeout))
        except DRIVER_ERRORS as error:
            raise _unavailable(error) from error

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        batch = [tuple(row) for row in rows]
        if not batch:
            return
        try:
            await self._target.executemany(_sql(sql), batch, timeout=self._timeout)
        except DRIVER_ERRORS as error:
            raise _unavailable(error) from error

    async def notify(self, topic: str) -> None:
        await self.execute("SELECT pg_notify(?, ?)", (CHANNEL, topic))

    async def batches(self, sql: str, size: int) -> AsyncIterator[list[Row]]:
        """A server-side cursor; needs the held connection of a transaction (``snapshot``)."""
        assert isinstance(self._target, asyncpg.Connection), "batches are read inside a snapshot"
        try:
            cursor = await self._target.cursor(_sql(sql))
            while rows := await cursor.fetch(size):
                yield [tuple(row) for row in rows]
        except DRIVER_ERRORS as error:
            raise _unavailable(error) from error

    async def run_script(self, script: str) -> None:
        """Several statements as written (a migration): no placeholders to number."""
        try:
            await self._target.execute(script, timeout=self._timeout)
        except DRIVER_ERRORS as error:
            raise _unavailable(error) from error


class PostgresDatabase(_Statements):
    backend = "postgresql"

    def __init__(self, pool: asyncpg.Pool, dsn: str) -> None:
        super().__init__(pool)
        self._pool = pool
        self._dsn = dsn
        self._listener: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, dsn: str, pool_size: int, statement_timeout: float) -> PostgresDatabase:
        try:
            pool = await asyncpg.create_pool(
                dsn, min_size=1, max_size=pool_size, timeout=10, command_timeout=statement_timeout
            )
        except DRIVER_ERRORS as error:
            raise StoreUnavailableError(f"cannot connect to PostgreSQL at {redact(dsn)}: {error}") from error
        return cls(pool, dsn)

    @staticmethod
    def skip_locked(alias: str) -> str:
        return f" FOR UPDATE OF {alias} SKIP LOCKED"

    @asynccontextmanager
    async def _held(self, connection: Connection | None) -> AsyncIterator[asyncpg.Connection]:
        if isinstance(connection, _Statements) and isinstance(connection._target, asyncpg.Connection):
            yield connection._target
            return
        try:
            # Every connection busy for this long means the database is not keeping up: say so, do not queue forever.
            acquired = await self._pool.acquire(timeout=_ACQUIRE_TIMEOUT_SECONDS)
        except DRIVER_ERRORS as error:
            raise _unavailable(error) from error
        try:
            yield acquired
        except (asyncio.CancelledError, TimeoutError):
            # The caller gave up mid-statement (a login's store budget, a shutdown).  The pool would
            # cancel the statement and wait for the server to confirm, which on a silent network
            # (a failover that left this connection talking to nobody) never comes: the caller would
            # hang past its budget.  A new connection costs milliseconds; this one is dropped.
            acquired.terminate()
            raise
        finally:
            with contextlib.suppress(*DRIVER_ERRORS):
                await self._pool.release(acquired, timeout=_RELEASE_TIMEOUT_SECONDS)

    @asynccontextmanager
    async def _in_transaction(self, connection: Connection | None, **options: Any) -> AsyncIterator[_Statements]:
        timeout = connection._timeout if isinstance(connection, _Statements) else None  # a session's bulk bound
        async with self._held(connection) as held:
            transaction = held.transaction(**options)
            try:
                await transaction.start()
            except DRIVER_ERRORS as error:
                raise _unavailable(error) from error
            try:
                yield _Statements(held, timeout)
            except BaseException:
                with contextlib.suppress(*DRIVER_ERRORS):
                    await transaction.rollback()
                raise
            try:
                await transaction.commit()
            except DRIVER_ERRORS as error:
                raise _unavailable(error) from error

    @asynccontextmanager
    async def transaction(self, *locks: str, connection: Connection | None = None) -> AsyncIterator[Connection]:
        async with self._in_transaction(connection) as statements:
            # Sorted: two transactions asking for the same locks never wait on each other in a cycle.
            for name in sorted(set(locks)):
                await statements.execute("SELECT pg_advisory_xact_lock(?)", (lock_key(name),))
            yield statements

    async def run_in_transaction(self, unit: Unit[Result], *locks: str) -> Result:
        async with self.transaction(*locks) as tx:
            return await unit(tx)

    async def run_reads(self, unit: Unit[Result]) -> Result:
        """One pooled connection for all of ``unit``'s reads (read committed: each sees the latest commits)."""
        async with self._held(None) as held:
            return await unit(_Statements(held))

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Connection]:
        """A held connection for bulk work: its statements may run up to ``BULK_STATEMENT_SECONDS``."""
        async with self._held(None) as held:
            yield _Statements(held, BULK_STATEMENT_SECONDS)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Connection]:
        async with self._in_transaction(None, isolation="repeatable_read", readonly=True) as statements:
            yield statements

    async def listen(self, listener: ChangeListener) -> None:
        if self._listener is None:
            connection = await self._connect_listener(listener)
            self._listener = asyncio.create_task(self._keep_listening(connection, listener), name="pg-listener")

    async def _connect_listener(self, listener: ChangeListener) -> asyncpg.Connection:
        try:
            connection = await asyncpg.connect(
                self._dsn, timeout=10, server_settings={"application_name": LISTENER_APPLICATION_NAME}
            )
            await connection.add_listener(CHANNEL, lambda _c, _pid, _channel, payload: listener(payload))
        except DRIVER_ERRORS as error:
            raise _unavailable(error) from error
        return connection

    async def _keep_listening(self, connection: asyncpg.Connection | None, listener: ChangeListener) -> None:
        """Heartbeat the listening connection; on loss, reconnect with backoff and report every topic."""
        delay = 0.2
        try:
            while True:
                await asyncio.sleep(_LISTENER_HEARTBEAT_SECONDS if connection is not None else delay)
                if connection is not None:
                    try:
                        await connection.fetchval("SELECT 1", timeout=_LISTENER_HEARTBEAT_SECONDS)
                        continue
                    except DRIVER_ERRORS as error:
                        log.warning("lost the PostgreSQL change listener; reconnecting", error=str(error))
                        connection.terminate()
                        connection = None
                try:
                    connection = await self._connect_listener(listener)
                except StoreUnavailableError as error:
                    delay = min(delay * 2, _RECONNECT_MAX_SECONDS)
                    log.warning("PostgreSQL change listener still down", error=str(error), retry_in=delay)
                    continue
                delay = 0.2
                log.info("PostgreSQL change listener back; resynchronising")
                for topic in TOPICS:
                    listener(topic)
        finally:
            if connection is not None:
                connection.terminate()

    async def migrate(self, progress: Callable[[str], None] | None = None) -> list[str]:
        """Apply what is missing, each migration in its own transaction, under a session advisory lock:
        replicas starting together wait for the first one and then find nothing left to do."""
        done: list[str] = []
        async with self._held(None) as held:
            statements = _Statements(held, BULK_STATEMENT_SECONDS)
            await statements.execute("SELECT pg_advisory_lock(?)", (lock_key("migrate"),))
            try:
                await statements.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
                )
                applied = {row[0] for row in await statements.fetch("SELECT version FROM schema_migrations")}
                for migration in load_migrations("postgresql"):
                    if migration.version in applied:
                        continue
                    log.info("applying schema migration", version=migration.version, name=migration.name)
                    if progress is not None:
                        progress(f"{migration.version:04d}_{migration.name}")
                    async with self._in_transaction(statements) as transaction:
                        await transaction.run_script(migration.sql)
                        await transaction.execute(
                            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                            (migration.version, migration.name, time.time()),
                        )
                    done.append(f"{migration.version:04d}_{migration.name}")
            finally:
                with contextlib.suppress(*DRIVER_ERRORS):
                    await held.execute("SELECT pg_advisory_unlock($1)", lock_key("migrate"))
        return done

    async def columns(self, table: str) -> list[str]:
        rows = await self.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
            (table,),
        )
        return [row[0] for row in rows]

    async def after_bulk_load(self, tx: Connection) -> None:
        """Move every identity sequence past the largest key now in its table."""
        identities = await tx.fetch(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND is_identity = 'YES'"
        )
        for table, column in identities:
            await tx.execute(
                f"SELECT setval(pg_get_serial_sequence(?, ?), COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1,"
                " false)",
                (table, column),
            )

    async def schema_version(self) -> int:
        row = await self.fetchone("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        return int(row[0]) if row else 0

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        with contextlib.suppress(*DRIVER_ERRORS):
            await asyncio.wait_for(self._pool.close(), timeout=5)
        self._pool.terminate()
