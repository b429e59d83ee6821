"""Versioned schema migrations, read from ``schema/<backend>/NNNN_name.sql`` and applied in order.

Each migration runs in its own transaction together with the row that records it,
so a failed migration leaves the schema at the previous version, never half-way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from gateway.store.errors import StoreUnavailableError

if TYPE_CHECKING:
    from gateway.store.database import Database

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(backend: str) -> list[Migration]:
    """Every migration shipped for ``backend``, by version; refuses gaps and duplicates."""
    folder = resources.files("gateway.store") / "schema" / backend
    migrations: list[Migration] = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            migrations.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    migrations.sort(key=lambda migration: migration.version)
    expected = list(range(1, len(migrations) + 1))
    if [migration.version for migration in migrations] != expected:
        raise RuntimeError(f"schema/{backend}: migration versions must run 0001..{len(migrations):04d} without gaps")
    return migrations


async def schema_version_or_zero(db: Database) -> int:
    """The schema version, or 0 on a database no mtsg has touched yet."""
    try:
        return int(await db.schema_version())
    except StoreUnavailableError:
        return 0
