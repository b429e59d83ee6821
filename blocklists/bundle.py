"""Signed bundles: how a publisher hands a registry to every gateway, safely.

The idea is TUF's, cut to what a blocklist needs.  A bundle is JSON Lines: the first
line is a header ``{"mtsg_bundle": 1, "manifest": {...}, "signatures": [...]}``, every
further line one indicator.  The manifest names the publisher, a bundle version that
only ever grows, when it was issued and when it expires, how many entries follow and
the SHA-256 of exactly those bytes.  Each signature is Ed25519 over the manifest's
canonical JSON, so one signature covers every entry through the digest.

The checks, in the order the shell runs them before storing anything:
``parse_header`` → ``verify_signatures`` (a trusted key signed this manifest) →
``check_freshness`` (not expired, newer than what we hold) → ``digest_entries``
(the entry lines are the ones that were signed) → ``decode_entry`` per line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from blocklists.entry import Indicator, InvalidIndicatorError, make_indicator
from blocklists.formats import FeedFormatError, format_timestamp, parse_timestamp, timestamp_field

FORMAT_VERSION = 1
_SIGNING_CONTEXT = b"mtsg-bundle-manifest-v1\n"
# The store keeps a publisher's last version as a 64-bit integer (SQLite INTEGER, PostgreSQL BIGINT).
MAX_BUNDLE_VERSION = 2**63 - 1


class BundleError(ValueError):
    """The bundle must not be applied; the message says why in words an operator can act on."""


class StaleBundleError(BundleError):
    """The bundle is genuine but must not replace what is applied: expired, older, or a fork."""


@dataclass(frozen=True, slots=True)
class Manifest:
    format_version: int
    publisher: str
    bundle_version: int
    issued_at: str
    expires: str
    entry_count: int
    entries_sha256: str

    def canonical(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()

    @property
    def expires_at(self) -> float:
        return parse_timestamp(self.expires)


@dataclass(frozen=True, slots=True)
class Signature:
    keyid: str
    signature: str  # base64


@dataclass(frozen=True, slots=True)
class AppliedBundle:
    """What the store remembers of the last bundle applied from a publisher."""

    bundle_version: int
    entries_sha256: str


# --- keys -------------------------------------------------------------------------------


def key_id(public_key: Ed25519PublicKey) -> str:
    """Short, stable name of a public key: the first 16 hex digits of SHA-256 of its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise BundleError(f"not a PEM private key: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError("the private key is not an Ed25519 key")
    return key


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as error:
        raise BundleError(f"not a PEM public key: {error}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError("the public key is not an Ed25519 key")
    return key


# --- entries ----------------------------------------------------------------------------


def encode_entry(indicator: Indicator) -> bytes:
    """One line of canonical JSON (sorted keys, no spaces, times in RFC 3339), newline included."""
    record: dict[str, Any] = {
        "key_type": indicator.key_type.value,
        "value": indicator.value,
        "category": indicator.category.value,
        "severity": indicator.severity.value,
        "source": indicator.source,
        "confidence": indicator.confidence,
    }
    for name in ("package_name", "family", "source_reference", "revoke_reason"):
        if getattr(indicator, name):
            record[name] = getattr(indicator, name)
    for name in ("valid_from", "valid_until"):
        if getattr(indicator, name) is not None:
            record[name] = format_timestamp(getattr(indicator, name))
    if indicator.revoked:
        record["revoked"] = True
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def decode_entry(line: bytes, number: int) -> Indicator:
    """Parse one entry line; ``number`` is its line number in the bundle, for the error."""
    location = f"line {number}"
    try:
        record = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FeedFormatError(location, f"not valid JSON: {error}") from None
    except RecursionError:  # arrays or objects nested thousands deep: the decoder recurses
        raise FeedFormatError(location, "not readable JSON: nested too deeply") from None
    if not isinstance(record, dict):
        raise FeedFormatError(location, "expected a JSON object")
    try:
        valid_from = timestamp_field(record.get("valid_from"), "valid_from")
        valid_until = timestamp_field(record.get("valid_until"), "valid_until")
        text = {name: record.get(name, "") for name in ("package_name", "family", "source_reference", "revoke_reason")}
        if not all(isinstance(value, str) for value in text.values()):
            raise InvalidIndicatorError("entry", "text fields must be strings")
        for name in ("key_type", "value", "category"):
            if not isinstance(record.get(name), str):
                raise InvalidIndicatorError(name, "is required and must be a string")
        return make_indicator(
            key_type=record["key_type"],
            value=record["value"],
            category=record["category"],
            severity=str(record.get("severity", "high")),
            source=str(record.get("source", "")),
            confidence=record.get("confidence", 50),
            revoked=record.get("revoked") is True,
            valid_from=valid_from,
            valid_until=valid_until,
            **text,
        )
    except InvalidIndicatorError as error:
        raise FeedFormatError(location, str(error)) from None


def digest_entries(lines: Iterable[bytes]) -> tuple[int, str]:
    """(number of entry lines, SHA-256 hex of their bytes) — what a manifest states."""
    digest = hashlib.sha256()
    count = 0
    for line in lines:
        digest.update(line)
        count += 1
    return count, digest.hexdigest()


# --- manifest and signatures ------------------------------------------------------------


def make_manifest(
    *, publisher: str, bundle_version: int, issued_at: float, expires_at: float, entry_count: int, entries_sha256: str
) -> Manifest:
    if not publisher.strip():
        raise BundleError("the publisher name must not be empty")
    _check_version(bundle_version)
    if expires_at <= issued_at:
        raise BundleError("the bundle must expire after it is issued")
    return Manifest(
        format_version=FORMAT_VERSION,
        publisher=publisher.strip(),
        bundle_version=bundle_version,
        issued_at=format_timestamp(issued_at),
        expires=format_timestamp(expires_at),
        entry_count=entry_count,
        entries_sha256=entries_sha256,
    )


def _check_version(bundle_version: int) -> None:
    if not 1 <= bundle_version <= MAX_BUNDLE_VERSION:
        raise BundleError(f"the bundle version must be from 1 to {MAX_BUNDLE_VERSION}, got {bundle_version}")


def sign_manifest(manifest: Manifest, key: Ed25519PrivateKey) -> Signature:
    raw = key.sign(_SIGNING_CONTEXT + manifest.canonical())
    return Signature(key_id(key.public_key()), base64.b64encode(raw).decode())


def header_line(manifest: Manifest | None, signatures: Sequence[Signature]) -> bytes:
    header = {
        "mtsg_bundle": FORMAT_VERSION,
        "manifest": asdict(manifest) if manifest is not None else None,
        "signatures": [asdict(signature) for signature in signatures],
    }
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def read_header(line: bytes) -> dict[str, Any]:
    """The header object of a bundle, signed or not; BundleError when line 1 is not one."""
    if not line.strip():  # an empty download or file is a common mistake; say so rather than "not JSON"
        raise BundleError("the bundle is empty: line 1, its header, is missing or blank")
    try:
        header = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise BundleError("line 1 is not a bundle header (not JSON); is this an mtsg bundle?") from None
    if not isinstance(header, dict) or header.get("mtsg_bundle") != FORMAT_VERSION:
        raise BundleError(f"line 1 is not an mtsg bundle header of format {FORMAT_VERSION}")
    return header


def parse_header(line: bytes) -> tuple[Manifest, list[Signature]]:
    """The manifest and signatures of a signed bundle's header."""
    header = read_header(line)
    raw_manifest = header.get("manifest")
    if raw_manifest is None:
        raise BundleError("the bundle is not signed yet: sign it with `mtsg blocklist sign`")
    try:
        manifest = Manifest(**raw_manifest)
        signatures = [Signature(**item) for item in header.get("signatures", [])]
    except TypeError as error:
        raise BundleError(f"the bundle header is malformed: {error}") from None
    expected_types = {
        "format_version": int,
        "publisher": str,
        "bundle_version": int,
        "issued_at": str,
        "expires": str,
        "entry_count": int,
        "entries_sha256": str,
    }
    for name, wanted in expected_types.items():
        if type(getattr(manifest, name)) is not wanted:
            raise BundleError(f"manifest field {name} must be {wanted.__name__}")
    _check_version(manifest.bundle_version)
    try:
        manifest.expires_at  # noqa: B018 - a malformed expiry must fail here, not later
        parse_timestamp(manifest.issued_at)
    except ValueError as error:
        raise BundleError(f"manifest time: {error}") from None
    return manifest, signatures


def verify_signatures(
    manifest: Manifest, signatures: Sequence[Signature], trusted: Mapping[str, Ed25519PublicKey]
) -> str:
    """The id of the trusted key whose valid signature covers the manifest; BundleError otherwise.

    A bundle may carry several signatures while keys rotate; one valid signature by
    a trusted key is enough, but a signature that claims a trusted key and does
    not verify refuses the bundle: that is tampering, not rotation.
    """
    if not signatures:
        raise BundleError("the bundle carries no signature")
    if not trusted:
        raise BundleError("no trusted publisher keys are configured; add the publisher's public key first")
    message = _SIGNING_CONTEXT + manifest.canonical()
    good: str | None = None
    for signature in signatures:
        key = trusted.get(signature.keyid)
        if key is None:
            continue
        try:
            key.verify(base64.b64decode(signature.signature, validate=True), message)
        except (InvalidSignature, binascii.Error, ValueError):
            raise BundleError(f"bad signature by trusted key {signature.keyid}: the bundle was altered") from None
        good = good or signature.keyid
    if good is None:
        signers = ", ".join(signature.keyid for signature in signatures)
        noun = "key" if len(signatures) == 1 else "keys"
        raise BundleError(f"signed only by unknown {noun} {signers}; trusted: {', '.join(sorted(trusted))}")
    return good


def check_freshness(manifest: Manifest, previous: AppliedBundle | None, now: float) -> bool:
    """True when the bundle should be applied, False when it is exactly the one already applied.

    Refuses an expired bundle (a frozen or replayed feed), a lower version (a
    rollback attack) and the same version with other contents (a forked publisher).
    """
    if now >= manifest.expires_at:
        raise StaleBundleError(f"the bundle expired at {manifest.expires}")
    if previous is None:
        return True
    if manifest.bundle_version < previous.bundle_version:
        raise StaleBundleError(
            f"bundle version {manifest.bundle_version} of {manifest.publisher} is older than the applied "
            f"version {previous.bundle_version}; refusing a rollback"
        )
    if manifest.bundle_version == previous.bundle_version:
        if manifest.entries_sha256 != previous.entries_sha256:
            raise StaleBundleError(
                f"bundle version {manifest.bundle_version} of {manifest.publisher} was already applied with "
                "different contents; a publisher must raise the version for every change"
            )
        return False
    return True


def check_entries(manifest: Manifest, count: int, sha256: str) -> None:
    if count != manifest.entry_count:
        raise BundleError(f"the manifest promises {manifest.entry_count} entries, the bundle holds {count}")
    if sha256 != manifest.entries_sha256:
        raise BundleError("the entries do not match the signed digest: the bundle was altered or truncated")
