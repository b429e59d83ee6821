"""Storage: one async interface over two backends, SQLite (embedded default) and PostgreSQL (replicas).

All SQL of mtsg lives in this package.  Services depend on the ``Store`` protocol
only; the SQL is written once (``sql_store``, ``registry``, ``outbox``,
``policies``) against the ``Database`` seam that each backend implements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import structlog

from gateway.store.database import ChangeListener, Database, redact
from gateway.store.errors import NoStoreError, StoreUnavailableError
from gateway.store.guards import GuardStore
from gateway.store.migrate import load_migrations, schema_version_or_zero
from gateway.store.outbox import CommandStore
from gateway.store.policies import PolicyStore
from gateway.store.records import (
    HistoryWindows,
    LoginHistory,
    LoginRecord,
    PhoneChangeMatch,
    PhoneChangeRecord,
    RecordedFreeze,
    StoredVerdict,
    VerdictQuery,
    VerdictRow,
)
from gateway.store.registry import BlocklistStore
from gateway.store.retention import DEFAULT_BATCH_SIZE, Progress, RetentionPolicy

__all__ = ["NoStoreError", "Store", "StoreUnavailableError", "is_postgres_url", "open_database", "open_store"]


class Store(Protocol):
    @property
    def backend(self) -> str:
        """ "sqlite" or "postgresql"."""
        ...

    async def load_login_history(
        self, customer_id: str, device_id: str, windows: HistoryWindows, request_id: str | None = None
    ) -> LoginHistory:
        """The customer's devices, latest phone change and recent locations; the device's other customers
        and previous app inventory — each within its window; and the verdict already stored under
        ``request_id``, if any (a retry)."""
        ...

    async def load_held_apps(self, device_id: str, digest: str) -> bytes | None:
        """The stored form of the list ``device_id`` sent under ``digest``, if the store holds it still."""
        ...

    async def record_login(self, record: LoginRecord) -> StoredVerdict:
        """Store verdict, device and location atomically.

        When a verdict with the same request_id was stored meanwhile (a concurrent
        retry, through this replica or another), nothing is written and that verdict
        is returned instead.  A reused nonce raises NonceReusedError and writes nothing.
        """
        ...

    async def record_freeze(self, record: LoginRecord, *, cap: int, held_back: LoginRecord) -> RecordedFreeze:
        """``record_login`` for a FREEZE under the safety valve: past ``cap`` FREEZE verdicts a minute,
        or with the valve tripped, ``held_back`` (its STEP_UP) is stored instead and the valve trips."""
        ...

    async def record_phone_changes(self, changes: Sequence[PhoneChangeRecord]) -> tuple[int, int]:
        """Store new changes atomically; return (accepted, duplicates by event_id)."""
        ...

    @property
    def blocklist(self) -> BlocklistStore:
        """The registry's tables."""
        ...

    @property
    def commands(self) -> CommandStore:
        """The outbox: commands, their deliveries and stream consumers."""
        ...

    @property
    def policies(self) -> PolicyStore:
        """Policy versions and shadow-scenario reports."""
        ...

    @property
    def guards(self) -> GuardStore:
        """The FREEZE safety valve."""
        ...

    async def phone_hash_key_use(self) -> dict[str, int]:
        """Stored phone-number changes per hash key id (a key may leave the ring once it has none)."""
        ...

    async def find_phone_changes(self, hashes: Mapping[str, str]) -> list[PhoneChangeMatch]:
        """Changes involving a number, given its hash under each key id; oldest first."""
        ...

    async def list_verdicts(self, query: VerdictQuery) -> list[VerdictRow]:
        """A customer's verdicts, newest first."""
        ...

    async def get_verdict(self, verdict_id: str) -> VerdictRow | None: ...

    async def count_rows(self, table: str) -> int: ...

    async def purge(
        self,
        policy: RetentionPolicy,
        now: float,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: Progress | None = None,
    ) -> dict[str, int]:
        """Remove what ``policy`` says is too old, in short transactions; rows removed per table."""
        ...

    async def count_purgeable(self, policy: RetentionPolicy, now: float) -> dict[str, int]:
        """What ``purge`` would remove now (at least: a purge frees more verdicts as it removes commands)."""
        ...

    async def schema_version(self) -> int: ...

    async def listen(self, listener: ChangeListener) -> None:
        """Call ``listener(topic)`` when another replica changes "blocklist", "policy" or "commands"."""
        ...

    async def close(self) -> None: ...


# store.statement_timeout_seconds: how long one PostgreSQL statement may run (bulk work excepted).
DEFAULT_STATEMENT_TIMEOUT = 30.0


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


async def open_database(
    url: str, data_dir: Path, pool_size: int = 10, statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT
) -> Database:
    """Connect to the backend named by ``url`` ("" means SQLite in ``data_dir``), without migrating.

    ``pool_size`` and ``statement_timeout`` are PostgreSQL's: SQLite has one connection on this host.
    """
    if is_postgres_url(url):
        from gateway.store.postgres_database import PostgresDatabase

        return await PostgresDatabase.open(url, pool_size, statement_timeout)
    from gateway.store.sqlite_database import SQLiteDatabase

    path = sqlite_path(url, data_dir)
    assert path is not None  # not PostgreSQL, so SQLite
    return await SQLiteDatabase.open(path)


def sqlite_path(url: str, data_dir: Path) -> Path | None:
    """The SQLite file ``url`` names ("" means the one in ``data_dir``), or None when it names PostgreSQL."""
    if is_postgres_url(url):
        return None
    return Path(url.removeprefix("sqlite:///")) if url else data_dir / "mtsg.sqlite3"


async def open_store(
    url: str,
    data_dir: Path,
    pool_size: int = 10,
    statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT,
    *,
    creates: bool = True,
) -> Store:
    """Open the backend named by ``url``, migrated to the latest schema.

    A store a later release migrated further is opened too, with an error in the log: refusing
    it would block rolling a deployment back, and whether this release runs on those migrations
    is for that release's notes to say.  But nobody should find out from failing logins.
    Without ``creates``, a database no mtsg has migrated yet raises NoStoreError rather than
    become an empty store: an operator's command pointed at the wrong database must say so.
    """
    from gateway.store.sql_store import SQLStore

    db = await open_database(url, data_dir, pool_size, statement_timeout)
    try:
        if not creates and await schema_version_or_zero(db) == 0:
            raise NoStoreError(f"no mtsg store in {redact(url) if url else data_dir}")
        await db.migrate()
        unknown = await newer_migrations(db)
    except BaseException:
        await db.close()
        raise
    if unknown:
        structlog.get_logger(__name__).error(
            "the store's schema is newer than this mtsg: a later release migrated it; run that release,"
            " or check that its release notes let this one run on those migrations",
            unknown_migrations=unknown,
            shipped_schema_version=len(load_migrations(db.backend)),
        )
    return SQLStore(db)


async def newer_migrations(db: Database) -> list[str]:
    """Migrations recorded in the store that this build does not ship (``NNNN_name``): a later release's."""
    latest = len(load_migrations(db.backend))
    rows = await db.fetch("SELECT version, name FROM schema_migrations WHERE version > ? ORDER BY version", (latest,))
    return [f"{version:04d}_{name}" for version, name in rows]
