"""What the store's SQL needs from a database, and nothing more: the seam between SQLite and PostgreSQL.

The store's modules (logins, registry, outbox, policies) are written once, in the
SQL both engines understand, with ``?`` placeholders.  A backend turns that into
its driver's calls and owns what truly differs: how a write transaction is
serialised (one SQLite writer vs. advisory locks on PostgreSQL), how a consistent
snapshot is read, and how other processes learn that something changed.

Every driver error leaves a backend as ``StoreUnavailableError``; errors that the
store's own code raises inside a transaction (an entry that exists, a refused
bundle) roll it back and pass through unchanged.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

Row = tuple[Any, ...]
ChangeListener = Callable[[str], None]
Result = TypeVar("Result")
# A unit of the store's work: a coroutine function over a connection that awaits only its statements.
Unit = Callable[["Connection"], Coroutine[Any, Any, Result]]

# Topics a committed change announces to every replica (PostgreSQL NOTIFY; SQLite has one process).
TOPICS = ("blocklist", "policy", "commands")


class Connection(Protocol):
    async def fetch(self, sql: str, parameters: Sequence[Any] = ()) -> list[Row]: ...

    async def fetchone(self, sql: str, parameters: Sequence[Any] = ()) -> Row | None: ...

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> int:
        """Run one statement; return how many rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    async def notify(self, topic: str) -> None:
        """Tell the other replicas, once this transaction commits, that ``topic`` changed."""
        ...

    def batches(self, sql: str, size: int) -> AsyncIterator[list[Row]]:
        """The rows of ``sql`` in batches of ``size``, read as they are needed (inside a snapshot)."""
        ...


class Database(Connection, Protocol):
    """A pool (or the one connection) of a backend; statements outside a transaction autocommit."""

    backend: str

    def skip_locked(self, alias: str) -> str:
        """Appended to a claim's SELECT so replicas skip the rows of ``alias`` another one is claiming."""
        ...

    def transaction(self, *locks: str, connection: Connection | None = None) -> AbstractAsyncContextManager[Connection]:
        """A write transaction; ``locks`` name what it must not interleave with in other replicas
        (the registry's version, the policy's version, the command feed's order)."""
        ...

    async def run_in_transaction(self, unit: Unit[Result], *locks: str) -> Result:
        """``unit`` in a write transaction as ``transaction`` runs it, but as one piece where the backend
        can: SQLite runs it on its thread in one trip, holding the write lock only for the SQL."""
        ...

    async def run_reads(self, unit: Unit[Result]) -> Result:
        """``unit``'s reads on one consistent snapshot, in one trip where the backend can."""
        ...

    def session(self) -> AbstractAsyncContextManager[Connection]:
        """One connection held for several statements (a staging TEMP table lives on it)."""
        ...

    def snapshot(self) -> AbstractAsyncContextManager[Connection]:
        """A read-only view that does not move while it is read (building a matcher from a million rows)."""
        ...

    async def listen(self, listener: ChangeListener) -> None:
        """Call ``listener(topic)`` when another process commits a change; after a lost connection,
        once per topic, because notifications sent meanwhile are gone."""
        ...

    async def migrate(self, progress: Callable[[str], None] | None = None) -> list[str]:
        """Bring the schema to the latest version; return the migrations applied now
        (``progress`` hears each one's name before it runs)."""
        ...

    async def columns(self, table: str) -> list[str]:
        """The table's columns in their declared order."""
        ...

    async def after_bulk_load(self, tx: Connection) -> None:
        """Make generated keys continue after rows copied in with their keys (``mtsg store copy``)."""
        ...

    async def schema_version(self) -> int: ...

    async def close(self) -> None: ...


def lock_key(name: str) -> int:
    """A stable 32-bit advisory-lock key per lock name, the same in every replica."""
    return zlib.crc32(f"mtsg:{name}".encode())


def changed_rows(status: str) -> int:
    """Rows changed, from a PostgreSQL command tag such as ``UPDATE 3`` or ``INSERT 0 1``."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isascii() and last.isdigit() else 0


def numbered_placeholders(sql: str) -> str:
    """``?`` → ``$1, $2, …`` outside quoted literals (asyncpg speaks PostgreSQL's numbered form)."""
    out: list[str] = []
    number = 0
    quoted = False
    for char in sql:
        if char == "'":
            quoted = not quoted
        if char == "?" and not quoted:
            number += 1
            out.append(f"${number}")
        else:
            out.append(char)
    return "".join(out)


# The DSN's query may carry the password too (``?password=``, or the TLS key's ``sslpassword``): the
# drivers read it there as from the user part.  Its value ends at the next parameter.
_QUERY_PASSWORD = re.compile(r"([?&](?:ssl)?password=)[^&#]*", re.IGNORECASE)


def redact(dsn: str) -> str:
    """The DSN without its passwords, for messages and logs."""
    masked = _QUERY_PASSWORD.sub(r"\1***", dsn)
    scheme, sep, rest = masked.partition("://")
    credentials, at, location = rest.rpartition("@")
    if not at:
        return masked
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{location}" if ":" in credentials else f"{scheme}{sep}{user}@{location}"
