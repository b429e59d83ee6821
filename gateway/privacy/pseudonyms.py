"""Pseudonyms for customer and device ids in logs.

Logs travel further than the database (log shippers, SIEMs, support tickets), so they
never carry a customer id: they carry a keyed hash of it.  Operators can still follow
one customer through the logs (the pseudonym is stable across replicas and restarts,
being made with the deployment's phone-hash key), and whoever holds the key can check
whether a given customer is the one in a log line, but the log alone names nobody.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

_DOMAIN = b"mtsg-log-pseudonym:"
_key = secrets.token_bytes(32)  # until the gateway installs the deployment's key


def use_pseudonym_key(key: bytes) -> None:
    """Derive the pseudonym key from a deployment secret (domain-separated: it never hashes a phone number)."""
    global _key
    _key = hmac.new(key, _DOMAIN, hashlib.sha256).digest()


def pseudonym(identifier: str) -> str:
    """A stable 16-hex-digit stand-in for ``identifier`` in logs."""
    return "p_" + hmac.new(_key, identifier.encode("utf-8"), hashlib.sha256).hexdigest()[:16]
