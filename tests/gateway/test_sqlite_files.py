"""The embedded store's files are the installation's owner's alone: they hold customers' data."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from gateway.store import open_store


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
