"""docs/ARCHITECTURE.md is true to the tree: every room is described, every path it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
DOCUMENT = ROOT / "docs" / "ARCHITECTURE.md"
GATEWAY = ROOT / "gateway"
# Top-level modules that are not a room's (the package marker).
_NOT_ROOMS = {"__init__.py"}


def _text() -> str:
    return DOCUMENT.read_text(encoding="utf-8")


def _named_paths(text: str) -> set[str]:
    """Backticked words that name a file or folder: with a slash, or ending in .py or .sql (not a URL path
    such as `/metrics`, nor a bare suffix)."""
    words = set(re.findall(r"`([^`\s]+)`", text))
    return {
        word for word in words if ("/" in word or word.endswith((".py", ".sql"))) and not word.startswith(("/", "."))
    }


def _exists(name: str) -> bool:
    clean = name.rstrip("/")
    if (ROOT / clean).exists() or (GATEWAY / clean).exists():
        return True
    # A bare file name, as the store's paragraph names its modules: somewhere in the package.
    return "/" not in clean and any(GATEWAY.rglob(clean))


def test_every_path_it_names_exists() -> None:
    missing = sorted(name for name in _named_paths(_text()) if not _exists(name))
    assert missing == []


def test_every_room_of_gateway_has_a_row() -> None:
    text = _text()
    rooms = sorted(path.name for path in GATEWAY.iterdir() if path.is_dir() and (path / "__init__.py").exists())
    described = {room for room in rooms if f"| `{room}/` |" in text}
    assert set(rooms) - {"generated"} - described == set()
    assert len(rooms) >= 12


def test_every_module_left_at_the_top_is_explained() -> None:
    text = _text()
    top = sorted(path.name for path in GATEWAY.glob("*.py") if path.name not in _NOT_ROOMS)
    assert [name for name in top if f"`{name}`" not in text] == []
    assert len(top) <= 6, f"the top of gateway/ is filling up again: {top}"


def test_a_missing_path_would_be_found() -> None:
    assert not _exists("gateway/no_such_module.py") and not _exists("no_such_module.py")
    assert _exists("server/start.py") and _exists("sql_store.py")
