"""Standard Webhooks signatures: ``v1`` (HMAC-SHA256) and ``v1a`` (Ed25519) over "id.timestamp.body".

Both kinds may be configured at once, and several keys of each: every key signs,
so during a rotation receivers holding the old or the new key both verify.  Keys
are written the way the spec writes them: ``whsec_`` + base64 for HMAC secrets,
``whsk_`` / ``whpk_`` + base64 of the raw 32-byte Ed25519 private / public key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HMAC_PREFIX = "whsec_"
PRIVATE_PREFIX = "whsk_"
PUBLIC_PREFIX = "whpk_"
# The spec asks for secrets of 24 to 64 bytes; shorter ones are too weak to accept.
MIN_SECRET_BYTES = 24
DEFAULT_TOLERANCE_SECONDS = 300
Key = TypeVar("Key")


class WebhookKeyError(ValueError):
    """A key is malformed; the message says which and how."""


class WebhookVerificationError(ValueError):
    """A request must be refused: missing headers, a stale timestamp or no valid signature."""


def _decode(text: str, prefix: str, what: str) -> bytes:
    text = text.strip()
    if not text.startswith(prefix):
        raise WebhookKeyError(f"{what} must start with {prefix!r}")
    try:
        return base64.b64decode(text.removeprefix(prefix), validate=True)
    except binascii.Error:
        raise WebhookKeyError(f"{what} is not valid base64 after {prefix!r}") from None


def parse_hmac_secret(text: str) -> bytes:
    secret = _decode(text, HMAC_PREFIX, "an HMAC secret")
    if len(secret) < MIN_SECRET_BYTES:
        raise WebhookKeyError(f"an HMAC secret must hold at least {MIN_SECRET_BYTES} bytes, got {len(secret)}")
    return secret


def parse_private_key(text: str) -> Ed25519PrivateKey:
    raw = _decode(text, PRIVATE_PREFIX, "an Ed25519 private key")
    # Some tools append the public half (64 bytes); the first 32 are the seed either way.
    if len(raw) not in (32, 64):
        raise WebhookKeyError(f"an Ed25519 private key holds 32 bytes, got {len(raw)}")
    return Ed25519PrivateKey.from_private_bytes(raw[:32])


def parse_public_key(text: str) -> Ed25519PublicKey:
    raw = _decode(text, PUBLIC_PREFIX, "an Ed25519 public key")
    if len(raw) != 32:
        raise WebhookKeyError(f"an Ed25519 public key holds 32 bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def public_key_text(key: Ed25519PublicKey) -> str:
    return PUBLIC_PREFIX + base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def generate_hmac_secret() -> str:
    return HMAC_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def generate_key_pair() -> tuple[str, str]:
    """(whsk_…, whpk_…): the gateway keeps the first, core banking gets the second."""
    seed = secrets.token_bytes(32)
    key = Ed25519PrivateKey.from_private_bytes(seed)
    return PRIVATE_PREFIX + base64.b64encode(seed).decode(), public_key_text(key.public_key())


def _key_lines(path: Path) -> list[str]:
    """Keys from a file, one per line; blank lines and # comments are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise WebhookKeyError(f"cannot read key file {path}: {error}") from error
    lines = [line.strip() for line in text.splitlines()]
    keys = [line for line in lines if line and not line.startswith("#")]
    if not keys:
        raise WebhookKeyError(f"key file {path} holds no key")
    return keys


def keys_in_file(path: Path, parse: Callable[[str], Key]) -> list[Key]:
    """Every key of ``path`` parsed by ``parse``; an error names the file and the key's position."""
    keys: list[Key] = []
    for number, line in enumerate(_key_lines(path), start=1):
        try:
            keys.append(parse(line))
        except WebhookKeyError as error:
            raise WebhookKeyError(f"{path}, key {number}: {error}") from None
    return keys


@dataclass(frozen=True)
class WebhookSigner:
    hmac_secrets: tuple[bytes, ...] = ()
    private_keys: tuple[Ed25519PrivateKey, ...] = ()

    @classmethod
    def from_files(cls, hmac_secret_file: Path | None, private_key_file: Path | None) -> WebhookSigner:
        return cls(
            tuple(keys_in_file(hmac_secret_file, parse_hmac_secret)) if hmac_secret_file else (),
            tuple(keys_in_file(private_key_file, parse_private_key)) if private_key_file else (),
        )

    @property
    def empty(self) -> bool:
        return not self.hmac_secrets and not self.private_keys

    def headers(self, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        content = _signed_content(webhook_id, timestamp, body)
        signatures = [
            "v1," + base64.b64encode(hmac.new(secret, content, hashlib.sha256).digest()).decode()
            for secret in self.hmac_secrets
        ]
        signatures += ["v1a," + base64.b64encode(key.sign(content)).decode() for key in self.private_keys]
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(signatures),
        }


def _signed_content(webhook_id: str, timestamp: int, body: bytes) -> bytes:
    return f"{webhook_id}.{timestamp}.".encode() + body


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes,
    *,
    hmac_secrets: Iterable[bytes],
    public_keys: Iterable[Ed25519PublicKey],
    now: float,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
) -> str:
    """Return the webhook-id when one signature verifies and the timestamp is fresh; raise otherwise.

    ``headers`` must be keyed in lower case.
    """
    webhook_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    signature_header = headers.get("webhook-signature", "")
    if not webhook_id or not stamp or not signature_header:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12:
        raise WebhookVerificationError("webhook-timestamp must be whole seconds since the epoch")
    if abs(now - int(stamp)) > tolerance_seconds:
        raise WebhookVerificationError(f"webhook-timestamp is more than {tolerance_seconds:g}s from now")
    content = _signed_content(webhook_id, int(stamp), body)
    secrets_list = list(hmac_secrets)
    keys = list(public_keys)
    for signature in signature_header.split():
        version, _, encoded = signature.partition(",")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            continue
        if version == "v1" and any(
            hmac.compare_digest(raw, hmac.new(secret, content, hashlib.sha256).digest()) for secret in secrets_list
        ):
            return webhook_id
        if version == "v1a" and any(_ed25519_valid(key, raw, content) for key in keys):
            return webhook_id
    raise WebhookVerificationError("no signature matches a known key")


def _ed25519_valid(key: Ed25519PublicKey, signature: bytes, content: bytes) -> bool:
    try:
        key.verify(signature, content)
    except InvalidSignature:
        return False
    return True
