"""Phone numbers are stored only as keyed hashes (HMAC-SHA256).

A plain hash of a phone number is reversible by trying every number; a keyed hash is
not without the key.  The key lives in a file outside the database; its id (a short
digest of the key) is stored next to every hash.

Keys rotate: the file holds one hex key per line, the first hashing new numbers and the
others kept so the hashes stored under them can still be matched (``mtsg privacy
find-number`` hashes a number under each).  A key may leave the file once retention has
removed the last row hashed with it (``mtsg privacy keys`` says when).
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
_E164 = re.compile(r"\+[1-9]\d{6,14}")
_SEPARATORS = str.maketrans("", "", " -().")


class PhoneNumberError(ValueError):
    """Not a phone number in E.164 form."""


class PhoneHashKeyError(RuntimeError):
    """The key file is missing, unreadable or too short."""


def normalize_phone_number(raw: str) -> str:
    """E.164 with separators removed, e.g. "+82 10-1234-5678" -> "+821012345678"."""
    number = raw.translate(_SEPARATORS)
    if not _E164.fullmatch(number):
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


@dataclass(frozen=True, slots=True)
class PhoneHashKeys:
    """The key ring: ``current`` hashes new numbers; ``all`` (current first) can match stored hashes."""

    all: tuple[PhoneNumberHasher, ...]

    @property
    def current(self) -> PhoneNumberHasher:
        return self.all[0]

    def hashes(self, normalized_number: str) -> dict[str, str]:
        """The number's hash under every key, by key id."""
        return {hasher.key_id: hasher.hash(normalized_number) for hasher in self.all}


def _parse_keys(path: Path, text: str) -> PhoneHashKeys:
    lines = [line.strip() for line in text.splitlines()]
    keys = [line for line in lines if line and not line.startswith("#")]
    if not keys:
        raise PhoneHashKeyError(f"phone-hash key file {path} holds no key")
    try:
        hashers = tuple(PhoneNumberHasher.from_key(bytes.fromhex(key)) for key in keys)
    except ValueError:
        raise PhoneHashKeyError(f"phone-hash key file {path} must hold one hex key per line") from None
    return PhoneHashKeys(hashers)


def load_or_create_keys(path: Path) -> PhoneHashKeys:
    """Read the key ring at ``path``; create it (mode 0600) with one fresh random key if it does not exist."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as error:
        raise PhoneHashKeyError(f"cannot create phone-hash key file {path}: {error}") from error
    else:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(KEY_BYTES) + "\n")
    return read_keys(path)


def read_keys(path: Path) -> PhoneHashKeys:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise PhoneHashKeyError(f"cannot read phone-hash key file {path}: {error}") from error
    return _parse_keys(path, text)


def rotate_keys(path: Path) -> tuple[PhoneHashKeys, PhoneHashKeys]:
    """Put a fresh key first in the ring at ``path``, keeping the others; (before, after).

    The file is replaced atomically (a gateway starting meanwhile reads the old ring or the
    new one, never half of one), with mode 0600.
    """
    before = read_keys(path)
    lines = [secrets.token_hex(KEY_BYTES), *(hasher.key.hex() for hasher in before.all)]
    temporary = path.with_name(path.name + ".rotating")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write("# phone-hash keys: the first hashes new numbers, the others match older hashes\n")
            handle.write("\n".join(lines) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        raise PhoneHashKeyError(f"cannot rewrite phone-hash key file {path}: {error}") from error
    return before, read_keys(path)
