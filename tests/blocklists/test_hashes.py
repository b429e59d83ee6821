from __future__ import annotations

import pytest

from blocklists.hashes import MalformedDigestError, normalize_hex_digest

DIGEST = "9c1e447a0b3d52e861f907aa2c4b8d135e7790c21f6a3bd8e405719f26b0c348"


@pytest.mark.parametrize(
    "raw",
    [
        DIGEST,
        DIGEST.upper(),
        ":".join(DIGEST[i : i + 2] for i in range(0, 64, 2)).upper(),
        f" {DIGEST[:32]}-{DIGEST[32:]}",
    ],
)
def test_spellings_of_one_digest_normalise_to_the_same_value(raw: str) -> None:
    assert normalize_hex_digest(raw, length=64) == DIGEST


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", "64 hex digits"),
        (DIGEST[:-1], "64 hex digits"),
        (DIGEST[:-1] + "g", "only hex digits"),
        (DIGEST[:40], "64"),
    ],
)
def test_malformed_digests_are_refused(raw: str, problem: str) -> None:
    with pytest.raises(MalformedDigestError, match=problem):
        normalize_hex_digest(raw, length=64)
