"""Databases of our own on the PostgreSQL server of this machine, for the tests that run on PostgreSQL.

One run creates a migrated template database, then one fresh database per test
from it (a copy is faster than migrating each time), and drops them all at the
end.  When the server cannot be reached the PostgreSQL tests are skipped on a
developer's machine but fail in CI (``CI=true``): a missing service must never
pass as green.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from gateway.store import open_store

ADMIN_URL = os.environ.get("MTSG_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def database_url(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


class PostgresDatabases:
    def __init__(self) -> None:
        self.prefix = f"mtsg_test_{os.getpid()}_{secrets.token_hex(3)}"
        self.template = f"{self.prefix}_template"
        self._numbers = itertools.count(1)

    async def _admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(ADMIN_URL, timeout=5)

    async def prepare(self) -> None:
        admin = await self._admin()
        try:
            await admin.execute(f'CREATE DATABASE "{self.template}"')
        finally:
            await admin.close()
        store = await open_store(database_url(self.template), Path("."))
        await store.close()

    async def create(self, migrated: bool = True) -> str:
        """A new database, migrated (from the template) or without any table; returns its URL."""
        name = f"{self.prefix}_{next(self._numbers)}"
        admin = await self._admin()
        try:
            await admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{self.template}"' if migrated else ""))
        finally:
            await admin.close()
        return database_url(name)

    async def drop(self, url: str) -> None:
        admin = await self._admin()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')
        finally:
            await admin.close()

    async def drop_all(self) -> None:
        admin = await self._admin()
        try:
            names = await admin.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1", f"{self.prefix}%")
            for (name,) in names:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def unreachable(error: BaseException) -> None:
    """Skip on a developer's machine; fail in CI."""
    message = f"PostgreSQL at {ADMIN_URL} is not reachable: {error}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: the PostgreSQL tests must run)", pytrace=False)
    pytest.skip(message)


def run_aside(work: Callable[[], Awaitable[object]]) -> None:
    """Run ``work`` on a loop of its own in a thread: session set-up may be asked for while a test's loop runs."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(work())  # type: ignore[arg-type]
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def start_databases() -> PostgresDatabases:
    databases = PostgresDatabases()
    try:
        run_aside(databases.prepare)
    except (TimeoutError, OSError, asyncpg.PostgresError) as error:
        unreachable(error)
    return databases
