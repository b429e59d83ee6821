"""A device's installed-app list in a compact, comparable form.

Split-install detection needs the previous login's app list for every device.
Storing names would cost kilobytes per device; a sorted run of 8-byte BLAKE2b
digests of package names costs 8 bytes per app (2.4 KB for 300 apps) and still
answers "was this package there last time?" — a collision would hide one new
app with odds of about 1 in 10^17 per pair.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

DIGEST_BYTES = 8


def package_digest(package_name: str) -> bytes:
    return hashlib.blake2b(package_name.encode("utf-8"), digest_size=DIGEST_BYTES).digest()


def pack_inventory(package_names: Iterable[str]) -> bytes:
    """The stored form: distinct digests, sorted, concatenated."""
    return b"".join(sorted({package_digest(name) for name in package_names}))


def unpack_inventory(blob: bytes) -> frozenset[bytes]:
    """Digests from the stored form; a truncated tail (not a whole digest) is ignored."""
    whole = len(blob) - len(blob) % DIGEST_BYTES
    return frozenset(blob[start : start + DIGEST_BYTES] for start in range(0, whole, DIGEST_BYTES))
