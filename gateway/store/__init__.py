"""Storage: one async interface; SQLite is the embedded backend.

All SQL of mtsg lives in this package.  Services depend on the ``Store`` protocol
only, so a second backend (PostgreSQL) slots in without touching them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from gateway.store.errors import StoreUnavailableError
from gateway.store.records import (
    HistoryWindows,
    LoginHistory,
    LoginRecord,
    PhoneChangeRecord,
    StoredVerdict,
    VerdictQuery,
    VerdictRow,
)

if TYPE_CHECKING:
    from gateway.store.sqlite_blocklist import SQLiteBlocklistStore
    from gateway.store.sqlite_commands import SQLiteCommandStore
    from gateway.store.sqlite_policies import SQLitePolicyStore

__all__ = ["Store", "StoreUnavailableError", "open_store"]


class Store(Protocol):
    async def find_verdict(self, request_id: str) -> StoredVerdict | None:
        """The verdict stored for this idempotency key, if any."""
        ...

    async def load_login_history(self, customer_id: str, device_id: str, windows: HistoryWindows) -> LoginHistory:
        """The customer's devices, latest phone change and recent locations; the device's other customers
        and previous app inventory — each within its window."""
        ...

    async def record_login(self, record: LoginRecord) -> StoredVerdict:
        """Store verdict, device and location atomically.

        When a verdict with the same request_id was stored meanwhile (a concurrent
        retry), nothing is written and that verdict is returned instead.
        """
        ...

    async def record_phone_changes(self, changes: Sequence[PhoneChangeRecord]) -> tuple[int, int]:
        """Store new changes atomically; return (accepted, duplicates by event_id)."""
        ...

    @property
    def blocklist(self) -> SQLiteBlocklistStore:
        """The registry's tables (one backend today; PostgreSQL brings a protocol of its own)."""
        ...

    @property
    def commands(self) -> SQLiteCommandStore:
        """The outbox: commands, their deliveries and stream consumers."""
        ...

    async def list_verdicts(self, query: VerdictQuery) -> list[VerdictRow]:
        """A customer's verdicts, newest first."""
        ...

    async def get_verdict(self, verdict_id: str) -> VerdictRow | None: ...

    @property
    def policies(self) -> SQLitePolicyStore:
        """Policy versions and shadow-scenario reports."""
        ...

    async def close(self) -> None: ...


async def open_store(url: str, data_dir: Path) -> Store:
    """Open the backend named by ``url`` ("" means SQLite in ``data_dir``), migrated to the latest schema."""
    from gateway.store.sqlite import SQLiteStore

    path = Path(url.removeprefix("sqlite:///")) if url else data_dir / "mtsg.sqlite3"
    return await SQLiteStore.open(path)
