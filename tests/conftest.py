"""Shared fixtures: a real gateway on a free local port, and a real client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.client import MtsgClient
from gateway.config import load_config
from gateway.server import RunningGateway, start_gateway
from tests.postgres import PostgresDatabases, run_aside, start_databases

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresDatabases]:
    """This run's databases on the local PostgreSQL server (created on first use, all dropped at the end)."""
    databases = start_databases()
    yield databases
    run_aside(databases.drop_all)


@pytest.fixture
async def postgres_url(postgres: PostgresDatabases) -> AsyncIterator[str]:
    """A fresh, migrated PostgreSQL database of this test's own."""
    url = await postgres.create()
    yield url
    await postgres.drop(url)


@pytest.fixture(params=BACKENDS)
async def store_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """Runs the test once on each backend: "" (SQLite in the data dir) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield ""
        return
    databases: PostgresDatabases = request.getfixturevalue("postgres")
    url = await databases.create()
    yield url
    await databases.drop(url)


@pytest.fixture
async def gateway(tmp_path: Path, store_url: str) -> AsyncIterator[RunningGateway]:
    config = load_config(
        environ={},
        overrides={
            ("server", "listen"): ("127.0.0.1:0", "test"),
            ("server", "metrics_listen"): ("127.0.0.1:0", "test"),
            ("store", "data_dir"): (str(tmp_path / "data"), "test"),
            ("store", "url"): (store_url, "test"),
            ("privacy", "phone_hash_key_file"): (str(tmp_path / "phone-hash.key"), "test"),
        },
    ).config
    running = await start_gateway(config)
    yield running
    await running.stop(grace=1.0)


@pytest.fixture
async def client(gateway: RunningGateway) -> AsyncIterator[MtsgClient]:
    async with MtsgClient(gateway.target, timeout=30) as connected:
        yield connected
