"""Phone numbers are stored only as keyed hashes (HMAC-SHA256).

A plain hash of a phone number is reversible by trying every number; a keyed hash is
not without the key.  The key lives in a file outside the database; its id (a short
digest of the key) is stored next to every hash so keys can rotate later.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

KEY_BYTES = 32
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SEPARATORS = str.maketrans("", "", " -().")


class PhoneNumberError(ValueError):
    """Not a phone number in E.164 form."""


class PhoneHashKeyError(RuntimeError):
    """The key file is missing, unreadable or too short."""


def normalize_phone_number(raw: str) -> str:
    """E.164 with separators removed, e.g. "+82 10-1234-5678" -> "+821012345678"."""
    number = raw.translate(_SEPARATORS)
    if not _E164.match(number):
        raise PhoneNumberError("must be an E.164 number such as +821012345678 ('+', country code, 7-15 digits)")
    return number


@dataclass(frozen=True, slots=True)
class PhoneNumberHasher:
    key: bytes
    key_id: str

    @classmethod
    def from_key(cls, key: bytes) -> PhoneNumberHasher:
        if len(key) < KEY_BYTES:
            raise PhoneHashKeyError(f"the phone-hash key must be at least {KEY_BYTES} bytes, got {len(key)}")
        return cls(key, hashlib.sha256(b"mtsg-key-id:" + key).hexdigest()[:12])

    def hash(self, normalized_number: str) -> str:
        return hmac.new(self.key, normalized_number.encode("ascii"), hashlib.sha256).hexdigest()


def load_or_create_hasher(path: Path) -> PhoneNumberHasher:
    """Read the hex key at ``path``; create it (mode 0600) with fresh random bytes if it does not exist."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as error:
        raise PhoneHashKeyError(f"cannot create phone-hash key file {path}: {error}") from error
    else:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(KEY_BYTES) + "\n")
    try:
        key = bytes.fromhex(path.read_text().strip())
    except OSError as error:
        raise PhoneHashKeyError(f"cannot read phone-hash key file {path}: {error}") from error
    except ValueError:
        raise PhoneHashKeyError(f"phone-hash key file {path} must hold the key as hex") from None
    return PhoneNumberHasher.from_key(key)
