"""Trusted publisher keys: the public halves of the keys allowed to sign bundles.

They sit as PEM files (``*.pub``) in one directory, so adding a publisher or
rotating a key is a file copy an operator can review, and no database write can
make a gateway trust a new signer.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from blocklists.bundle import BundleError, key_id, load_public_key


class TrustedKeyError(RuntimeError):
    """A key file in the trusted directory cannot be used; the message names it."""


def load_trusted_keys(directory: Path) -> dict[str, Ed25519PublicKey]:
    """Key id → public key for every ``*.pub`` in ``directory`` (none when it does not exist)."""
    if not directory.is_dir():
        return {}
    keys: dict[str, Ed25519PublicKey] = {}
    for path in sorted(directory.glob("*.pub")):
        try:
            key = load_public_key(path.read_bytes())
        except (OSError, BundleError) as error:
            raise TrustedKeyError(f"trusted key {path}: {error}") from None
        keys[key_id(key)] = key
    return keys


def require_trusted_keys(directory: Path) -> dict[str, Ed25519PublicKey]:
    """``load_trusted_keys``, or TrustedKeyError saying where the publisher's key goes when there is none."""
    keys = load_trusted_keys(directory)
    if not keys:
        raise TrustedKeyError(
            f"no trusted publisher keys in {directory} (blocklist.trusted_keys_dir): copy the publisher's public"
            " key there as a *.pub file (`mtsg keys generate` writes one beside its private key)"
        )
    return keys
