"""The store: migrations run once, in order, even when replicas start together; a refused open leaves nothing open;
every SQLite connection has the store's settings."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from gateway.store import open_store
from gateway.store.database import Connection, Row
from gateway.store.errors import StoreUnavailableError
from gateway.store.migrate import load_migrations
from gateway.store.sql_store import SQLStore
from gateway.store.sqlite_database import SQLiteDatabase
from gateway.store.sqlite_write_lock import lock_file_path


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_both_backends_ship_the_same_migrations(backend: str) -> None:
    shipped = load_migrations(backend)
    assert [migration.version for migration in shipped] == list(range(1, len(shipped) + 1))
    assert [m.name for m in shipped] == [m.name for m in load_migrations("sqlite")]


async def test_migrations_apply_once_and_the_version_survives_reopening(tmp_path: Path, store_url: str) -> None:
    shipped = load_migrations("sqlite")
    store = await open_store(store_url, tmp_path)
    assert await store.schema_version() == len(shipped)
    await store.close()
    reopened = await open_store(store_url, tmp_path)
    assert await reopened.schema_version() == len(shipped)
    assert await reopened.count_rows("verdicts") == 0
    await reopened.close()


async def test_replicas_starting_together_migrate_an_empty_database_once(postgres_url: str, tmp_path: Path) -> None:
    import asyncpg

    from tests.postgres import PostgresDatabases  # noqa: F401  (the fixture's type)

    # An empty database (not from the migrated template): five replicas race to migrate it.
    name = postgres_url.rpartition("/")[2] + "_empty"
    admin_url = postgres_url.rpartition("/")[0] + "/postgres"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = postgres_url.rpartition("/")[0] + "/" + name
    try:
        stores = await asyncio.gather(*(open_store(url, tmp_path) for _ in range(5)))
        for store in stores:
            assert await store.schema_version() == len(load_migrations("postgresql"))
        first = stores[0]
        assert isinstance(first, SQLStore)
        assert await first.db.fetchone("SELECT COUNT(*) FROM schema_migrations") == (
            len(load_migrations("postgresql")),
        )
        for store in stores:
            await store.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_database_whose_lock_file_cannot_be_opened_is_refused_with_nothing_left_open(tmp_path: Path) -> None:
    """The writers' lock file is opened after the connections: a failure there closes what came before."""
    path = tmp_path / "locked.sqlite3"
    lock_file_path(path).mkdir()  # a directory where the lock file belongs: os.open fails with EISDIR
    await (await SQLiteDatabase.open(tmp_path / "warm-up.sqlite3")).close()  # the driver's own imports
    descriptors, threads = _open_descriptors(), set(threading.enumerate())
    with pytest.raises(StoreUnavailableError, match=r"cannot use SQLite database .*locked\.sqlite3: .*Is a directory"):
        await SQLiteDatabase.open(path)
    assert _open_descriptors() == descriptors
    # A closed connection's thread ends a moment after close() returns; a leaked one never does.
    started = set(threading.enumerate()) - threads
    for thread in started:
        await asyncio.to_thread(thread.join, 5)
    assert [thread.name for thread in started if thread.is_alive()] == []
    # Nothing was written past the refusal: a database that can be opened works as before.
    lock_file_path(path).rmdir()
    database = await SQLiteDatabase.open(path)
    assert await database.fetch("SELECT 1") == [(1,)]
    await database.close()


async def test_every_connection_of_the_sqlite_store_syncs_fully_and_keeps_temporary_data_in_memory(
    tmp_path: Path,
) -> None:
    """The admin connection, the loop's reads and the shared write transactions all have the store's settings."""
    database = await SQLiteDatabase.open(tmp_path / "settings.sqlite3")

    async def settings(connection: Connection) -> list[Row | None]:
        return [await connection.fetchone(f"PRAGMA {name}") for name in ("synchronous", "temp_store", "foreign_keys")]

    full, memory, on = (2,), (2,), (1,)
    try:
        assert await settings(database) == [full, memory, on]
        assert await database.run_reads(settings) == [full, memory, on]
        assert await database.run_in_transaction(settings) == [full, memory, on]
    finally:
        await database.close()
