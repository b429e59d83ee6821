"""The SQLite store: migrations run once, in order, and survive a restart."""

from __future__ import annotations

from pathlib import Path

from gateway.store.migrate import load_migrations
from gateway.store.sqlite import SQLiteStore


async def test_migrations_apply_once_and_the_version_survives_reopening(tmp_path: Path) -> None:
    shipped = load_migrations("sqlite")
    assert [migration.version for migration in shipped] == list(range(1, len(shipped) + 1))
    store = await SQLiteStore.open(tmp_path / "db.sqlite3")
    assert await store.schema_version() == len(shipped)
    await store.close()
    reopened = await SQLiteStore.open(tmp_path / "db.sqlite3")
    assert await reopened.schema_version() == len(shipped)
    assert await reopened.count_rows("verdicts") == 0
    await reopened.close()
