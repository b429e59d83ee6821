"""The embedded store's files are the installation's owner's alone: they hold customers' data."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from pathlib import Path

from gateway.server.start import start_gateway
from gateway.store import open_database, open_store
from gateway.store.migrate import load_migrations
from tests.helpers import gateway_config


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_new_store_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # the usual umask, under which files come out world-readable
    try:
        store = await open_store("", tmp_path / "data")
        try:
            await store.phone_hash_key_use()  # a read, so the WAL and shared-memory files exist
            files = sorted(path.name for path in (tmp_path / "data").iterdir())
            modes = {name: _mode(tmp_path / "data" / name) for name in files}
        finally:
            await store.close()
    finally:
        os.umask(previous)
    assert "mtsg.sqlite3" in files and "mtsg.sqlite3-wal" in files
    assert {name: mode for name, mode in modes.items() if mode & 0o077} == {}
    assert _mode(tmp_path / "data") == 0o700


async def test_an_existing_store_keeps_the_permissions_its_owner_chose(tmp_path: Path) -> None:
    store = await open_store("", tmp_path)
    await store.close()
    (tmp_path / "mtsg.sqlite3").chmod(0o640)  # say, a backup agent's group may read it
    reopened = await open_store("", tmp_path)
    await reopened.close()
    assert _mode(tmp_path / "mtsg.sqlite3") == 0o640


async def test_a_read_never_sees_another_tasks_uncommitted_transaction(tmp_path: Path) -> None:
    """The blocklist refresher once read an import's merge before it committed: had the merge then
    rolled back, the matcher would have kept entries (and a version) the registry never had."""
    store = await open_store("", tmp_path)
    database = store.blocklist._db  # the shared connection every non-login read and admin write uses
    writing, read_started = asyncio.Event(), asyncio.Event()

    async def write_then_roll_back() -> None:
        with contextlib.suppress(RuntimeError):
            async with database.transaction() as tx:
                await tx.execute("UPDATE blocklist_state SET version = 99")
                assert (await tx.fetchone("SELECT version FROM blocklist_state")) == (99,)  # its own reads see it
                writing.set()
                await read_started.wait()
                await asyncio.sleep(0.05)  # the read is waiting now, if it waits
                raise RuntimeError("the merge failed")

    async def read() -> int:
        await writing.wait()
        reading = asyncio.ensure_future(store.blocklist.version())
        read_started.set()
        return await reading

    try:
        _, seen = await asyncio.gather(write_then_roll_back(), read())
        assert seen == 0 and await store.blocklist.version() == 0
    finally:
        await store.close()


async def test_a_gateway_started_on_a_new_data_directory_makes_it_its_owners_alone(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        running = await start_gateway(gateway_config(tmp_path))
        await running.stop(grace=0.5)
    finally:
        os.umask(previous)
    data = tmp_path / "data"
    assert _mode(data) == 0o700
    assert {path.name: _mode(path) for path in data.iterdir() if path.is_file() and _mode(path) & 0o077} == {}


async def test_two_migrations_of_one_new_file_at_once_apply_each_version_once(tmp_path: Path) -> None:
    """Two openers, each with its own lock file handle, as two processes have: one migrates, the other finds it done."""
    first, second = await open_database("", tmp_path, 1), await open_database("", tmp_path, 1)
    try:
        applied = await asyncio.gather(first.migrate(), second.migrate())
        shipped = [f"{m.version:04d}_{m.name}" for m in load_migrations("sqlite")]
        assert sorted(applied, key=len) == [[], shipped]
        versions = await first.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [row[0] for row in versions] == [m.version for m in load_migrations("sqlite")]
    finally:
        await first.close()
        await second.close()


async def test_openers_of_one_new_file_at_once_all_open_it(tmp_path: Path) -> None:
    """Putting a new file in WAL mode from several connections at once could leave one "database is locked"
    (about 1 round in 10 of six openers, and 2 starts in 12 of two gateways, before the fix)."""
    for round_number in range(20):
        data = tmp_path / f"round-{round_number}"
        opened = await asyncio.gather(*(open_database("", data, 1) for _ in range(6)), return_exceptions=True)
        failures = [result for result in opened if isinstance(result, BaseException)]
        for result in opened:
            if not isinstance(result, BaseException):
                await result.close()
        assert failures == [], f"round {round_number}: {failures}"
