"""A device's installed-app list in a compact, comparable form.

Split-install detection needs the previous login's app list for every device.
The list is stored as its sorted, distinct package names, newline-joined and
zlib-compressed (fast level): about 1 KB for 250 apps, since names share long
prefixes.  Exact names mean no collision can hide a new app, and reading it back
costs a decompression and a set, cheaper than hashing every name at each login.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable


def pack_inventory(package_names: Iterable[str]) -> bytes:
    """The stored form of an app list."""
    return zlib.compress("\n".join(sorted(set(package_names))).encode("utf-8"), 1)


def unpack_inventory(blob: bytes) -> frozenset[str] | None:
    """The package names of a stored list; None when the blob is damaged (the device then counts as unseen)."""
    try:
        text = zlib.decompress(blob).decode("utf-8")
    except (zlib.error, UnicodeDecodeError):
        return None
    return frozenset(text.split("\n")) if text else frozenset()
