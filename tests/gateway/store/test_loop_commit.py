"""SQLite's shared transactions: statements on the event loop, the COMMIT and any waiting on a thread."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.store.database import Connection
from gateway.store.loop_commit import LoopCommitter
from gateway.store.sqlite_write_lock import lock_file_path


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Path]:
    path = tmp_path / "loop.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY)")
    yield path


def _insert(row_id: int, fail: bool = False):  # type: ignore[no-untyped-def]
    async def unit(tx: Connection) -> int:
        await tx.execute("INSERT INTO rows (id) VALUES (?)", (row_id,))
        if fail:
            raise ValueError(f"unit {row_id} gives up after writing")
        return row_id

    return unit


def _stored(path: Path) -> set[int]:
    with sqlite3.connect(path) as connection:
        return {row[0] for row in connection.execute("SELECT id FROM rows")}


async def _ticks_while(waiting: asyncio.Future[object]) -> int:
    """How often the loop got to run something else while ``waiting`` was pending."""
    ticks = 0
    while not waiting.done():
        ticks += 1
        await asyncio.sleep(0.01)
    return ticks


async def test_concurrent_units_all_commit_and_each_gets_its_own_result(database: Path) -> None:
    committer = LoopCommitter(database)
    try:
        results = await asyncio.gather(*(committer.run(_insert(number)) for number in range(300)))
    finally:
        await committer.close()
    assert results == list(range(300))
    assert _stored(database) == set(range(300))


async def test_a_failing_unit_is_rolled_back_alone(database: Path) -> None:
    committer = LoopCommitter(database)
    try:
        results = await asyncio.gather(
            committer.run(_insert(1)),
            committer.run(_insert(2)),
            committer.run(_insert(3, fail=True)),
            committer.run(_insert(4)),
            return_exceptions=True,
        )
    finally:
        await committer.close()
    assert results[:2] == [1, 2] and results[3] == 4
    assert isinstance(results[2], ValueError)
    assert _stored(database) == {1, 2, 4}


async def test_another_writers_lock_file_is_waited_for_off_the_loop(database: Path) -> None:
    other = os.open(lock_file_path(database), os.O_RDWR | os.O_CREAT, 0o600)  # as another process holds it
    fcntl.flock(other, fcntl.LOCK_EX)
    committer = LoopCommitter(database)
    try:
        write = asyncio.ensure_future(committer.run(_insert(7)))
        asyncio.get_running_loop().call_later(0.3, fcntl.flock, other, fcntl.LOCK_UN)
        ticks = await _ticks_while(write)
        assert await write == 7
    finally:
        await committer.close()
        os.close(other)
    assert ticks >= 10  # the loop went on for the 0.3 s the lock was held
    assert _stored(database) == {7}


async def test_a_writer_that_ignores_the_lock_file_is_waited_for_off_the_loop(database: Path) -> None:
    foreign = sqlite3.connect(database, isolation_level=None)  # e.g. an operator's sqlite3 shell
    foreign.execute("BEGIN IMMEDIATE")
    foreign.execute("INSERT INTO rows (id) VALUES (100)")
    committer = LoopCommitter(database)
    try:
        write = asyncio.ensure_future(committer.run(_insert(8)))
        asyncio.get_running_loop().call_later(0.3, foreign.execute, "COMMIT")
        ticks = await _ticks_while(write)
        assert await write == 8
    finally:
        await committer.close()
        foreign.close()
    assert ticks >= 10
    assert _stored(database) == {8, 100}


async def test_a_caller_gone_before_its_turn_writes_nothing(database: Path) -> None:
    other = os.open(lock_file_path(database), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(other, fcntl.LOCK_EX)
    committer = LoopCommitter(database)
    try:
        first = asyncio.ensure_future(committer.run(_insert(1)))
        await asyncio.sleep(0.05)  # the first transaction now waits for the lock file
        gone = asyncio.ensure_future(committer.run(_insert(2)))
        await asyncio.sleep(0.01)
        gone.cancel()
        fcntl.flock(other, fcntl.LOCK_UN)
        assert await first == 1
        with pytest.raises(asyncio.CancelledError):
            await gone
    finally:
        await committer.close()
        os.close(other)
    assert _stored(database) == {1}
