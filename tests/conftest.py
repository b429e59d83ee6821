"""Shared fixtures: a real gateway on a free local port, and a real client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.client import MtsgClient
from gateway.server.start import RunningGateway, start_gateway
from gateway.store import Store, open_store
from tests.helpers import gateway_config
from tests.postgres import PostgresDatabases, run_aside, start_databases
from tests.tcp_proxy import FaultyProxy

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


@pytest.fixture
async def proxy() -> AsyncIterator[FaultyProxy]:
    """A proxy in front of the local PostgreSQL server, for a test to break (``in_front_of`` gives the URL)."""
    running = FaultyProxy("127.0.0.1", 5432)
    await running.start()
    yield running
    await running.close()


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
async def store(tmp_path: Path, store_url: str) -> AsyncIterator[Store]:
    """The store alone, migrated, on each backend (``store_url``)."""
    opened = await open_store(store_url, tmp_path)
    yield opened
    await opened.close()


@pytest.fixture
async def gateway(tmp_path: Path, store_url: str) -> AsyncIterator[RunningGateway]:
    config = gateway_config(tmp_path, store_url, metrics=True)
    running = await start_gateway(config)
    yield running
    await running.stop(grace=1.0)


@pytest.fixture
async def client(gateway: RunningGateway) -> AsyncIterator[MtsgClient]:
    async with MtsgClient(gateway.target, timeout=30) as connected:
        yield connected
