"""Normalisation of the hex digests that identify apps and certificates.

Feeds and SDKs write the same digest in many ways ("AB:CD:..", "ab cd ..", upper
case).  Everything inside mtsg compares lower-case hex with no separators, so
every digest passes through here once, at the edge.
"""

from __future__ import annotations

import re
import string

SHA256_HEX_LENGTH = 64
SHA1_HEX_LENGTH = 40
_SEPARATORS = str.maketrans("", "", ": -")
_HEX = frozenset(string.hexdigits.lower())
# Most digests already arrive in canonical form; matching that is several times cheaper than rewriting.
_CANONICAL = re.compile(r"[0-9a-f]+")


class MalformedDigestError(ValueError):
    """The text is not a hex digest of the expected length."""


def is_canonical_hex_digest(raw: str, length: int) -> bool:
    """Already lower-case hex of the right length: what nearly every well-behaved SDK sends."""
    return len(raw) == length and _CANONICAL.fullmatch(raw) is not None


def normalize_hex_digest(raw: str, *, length: int) -> str:
    """Return ``raw`` as lower-case hex without separators, or raise MalformedDigestError."""
    if is_canonical_hex_digest(raw, length):
        return raw
    digest = raw.translate(_SEPARATORS).lower()
    if len(digest) != length:
        raise MalformedDigestError(f"must be {length} hex digits, got {len(digest)} characters")
    if not _HEX.issuperset(digest):
        raise MalformedDigestError("must contain only hex digits 0-9 and a-f (':' or '-' separators allowed)")
    return digest
