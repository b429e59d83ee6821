"""The registry's entry model: what one indicator says, validated and normalised.

Every feed format and the admin API end up building ``Indicator`` values through
``make_indicator``, so the rules (which categories exist, how a hash is written,
what a package name may look like) live in one place.  Times are seconds since
the Unix epoch; the core never reads a clock, callers pass ``now`` where it matters.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, replace
from enum import Enum

from blocklists.hashes import SHA1_HEX_LENGTH, SHA256_HEX_LENGTH, MalformedDigestError, normalize_hex_digest


class KeyType(Enum):
    """Which property of an installed app an indicator matches."""

    APK_SHA256 = "apk_sha256"
    CERT_SHA256 = "cert_sha256"
    CERT_SHA1 = "cert_sha1"
    PACKAGE_NAME = "package_name"
    # A package name only together with its signing certificate: names collide,
    # (name, certificate) pairs do not.
    PACKAGE_AND_CERT = "package_and_cert"


class Category(Enum):
    VOICE_PHISHING = "voice_phishing"
    REMOTE_CONTROL = "remote_control"
    BANKER_TROJAN = "banker_trojan"
    FAKE_BANK_APP = "fake_bank_app"
    STALKERWARE = "stalkerware"
    SPYWARE = "spyware"
    DROPPER = "dropper"
    ROOT_TOOL = "root_tool"


class EntrySeverity(Enum):
    """How strong a match is; the signals room maps it onto its own severity scale."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class InvalidIndicatorError(ValueError):
    """An indicator is not valid; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# Android application ids: dot-separated segments of letters, digits and underscores,
# each starting with a letter.  iOS bundle ids also allow '-'.
_PACKAGE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)+")
MAX_PACKAGE_NAME_LENGTH = 255
MAX_TEXT_LENGTH = 1000


@dataclass(frozen=True, slots=True)
class Indicator:
    """One indicator as feeds and operators state it, before the store gives it a history.

    ``value`` is the normalised match value: lower-case hex for digests, the package
    name for PACKAGE_NAME, and the certificate SHA-256 for PACKAGE_AND_CERT (whose
    package is in ``package_name``).
    """

    key_type: KeyType
    value: str
    category: Category
    severity: EntrySeverity = EntrySeverity.HIGH
    package_name: str = ""
    family: str = ""
    source: str = "manual"
    source_reference: str = ""
    confidence: int = 50
    valid_from: float | None = None
    valid_until: float | None = None
    revoked: bool = False
    revoke_reason: str = ""

    @property
    def natural_key(self) -> tuple[str, str, str, str]:
        """Identity of an indicator: the same key from two sources is two entries, each keeping its attribution."""
        return (self.key_type.value, self.value, self.package_name, self.source)

    @property
    def entry_id(self) -> str:
        """Stable id derived from the natural key, so every replica and every re-import names it alike."""
        return entry_id_for(*self.natural_key)

    def is_active(self, now: float) -> bool:
        if self.revoked:
            return False
        if self.valid_from is not None and now < self.valid_from:
            return False
        return self.valid_until is None or now < self.valid_until

    def revoke(self, reason: str) -> Indicator:
        return replace(self, revoked=True, revoke_reason=reason)


def entry_id_for(key_type: str, value: str, package_name: str, source: str) -> str:
    digest = hashlib.sha256("\x1f".join((key_type, value, package_name, source)).encode()).hexdigest()
    return f"bl_{digest[:24]}"


@dataclass(frozen=True, slots=True)
class Entry:
    """An indicator as stored: with its id and who made and changed it when."""

    indicator: Indicator
    created_at: float
    created_by: str
    modified_at: float
    modified_by: str

    @property
    def entry_id(self) -> str:
        return self.indicator.entry_id


def _enum(enum_type: type[Enum], raw: object, field: str) -> Enum:
    if isinstance(raw, enum_type):
        return raw
    text = str(raw).strip().lower().replace("-", "_").replace(" ", "_")
    for member in enum_type:
        if member.value == text:
            return member
    choices = ", ".join(member.value for member in enum_type)
    raise InvalidIndicatorError(field, f"unknown value {str(raw)[:60]!r}; expected one of {choices}")


def parse_key_type(raw: object) -> KeyType:
    return _enum(KeyType, raw, "key_type")  # type: ignore[return-value]


def parse_category(raw: object) -> Category:
    return _enum(Category, raw, "category")  # type: ignore[return-value]


def parse_severity(raw: object) -> EntrySeverity:
    return _enum(EntrySeverity, raw, "severity")  # type: ignore[return-value]


def normalize_package_name(raw: str, field: str = "package_name") -> str:
    name = raw.strip()
    if not name:
        raise InvalidIndicatorError(field, "must not be empty")
    if len(name) > MAX_PACKAGE_NAME_LENGTH:
        raise InvalidIndicatorError(field, f"must be at most {MAX_PACKAGE_NAME_LENGTH} characters")
    if not _PACKAGE_NAME.fullmatch(name):
        raise InvalidIndicatorError(field, f"{name[:60]!r} is not a package name like com.example.app")
    return name


def _digest(raw: str, length: int, field: str) -> str:
    try:
        return normalize_hex_digest(raw.strip(), length=length)
    except MalformedDigestError as error:
        raise InvalidIndicatorError(field, str(error)) from None


EXPIRED_PROBLEM = "is already past: the entry would never match (check the date)"


def expired_by(indicator: Indicator, now: float) -> bool:
    """True when ``indicator`` stopped being valid before ``now``: adding it by hand is a mistake (a wrong
    year, say) that would otherwise look done while it never matches.  Imports keep such entries, for the record."""
    return indicator.valid_until is not None and indicator.valid_until <= now


CONTROL_CHARACTERS_PROBLEM = "must not contain control characters (line breaks and tabs are fine)"


def without_control_characters(text: str) -> bool:
    """True when ``text`` holds no control character but line breaks and tabs: what a person writes.

    Feeds and callers are not trusted to send clean text, and PostgreSQL cannot even store a NUL.
    """
    return text.replace("\n", "").replace("\t", "").isprintable()


def _text(raw: str, field: str) -> str:
    text = raw.strip()
    if len(text) > MAX_TEXT_LENGTH:
        raise InvalidIndicatorError(field, f"must be at most {MAX_TEXT_LENGTH} characters")
    if not without_control_characters(text):
        raise InvalidIndicatorError(field, CONTROL_CHARACTERS_PROBLEM)
    return text


def _time(raw: float | None, field: str) -> float | None:
    if raw is None:
        return None
    if not math.isfinite(raw) or raw < 0:
        raise InvalidIndicatorError(field, "must be a finite time after 1970")
    return float(raw)


def make_indicator(
    *,
    key_type: KeyType | str,
    value: str,
    category: Category | str,
    severity: EntrySeverity | str = EntrySeverity.HIGH,
    package_name: str = "",
    family: str = "",
    source: str = "manual",
    source_reference: str = "",
    confidence: int = 50,
    valid_from: float | None = None,
    valid_until: float | None = None,
    revoked: bool = False,
    revoke_reason: str = "",
) -> Indicator:
    """Validate and normalise; raises InvalidIndicatorError naming the first bad field."""
    kind = parse_key_type(key_type)
    if kind is KeyType.APK_SHA256 or kind is KeyType.CERT_SHA256 or kind is KeyType.PACKAGE_AND_CERT:
        normalized = _digest(value, SHA256_HEX_LENGTH, "value")
    elif kind is KeyType.CERT_SHA1:
        normalized = _digest(value, SHA1_HEX_LENGTH, "value")
    else:
        normalized = normalize_package_name(value, "value")
    package = ""
    if kind is KeyType.PACKAGE_AND_CERT:
        package = normalize_package_name(package_name)
    elif package_name.strip():
        raise InvalidIndicatorError("package_name", "is only used with key type package_and_cert")
    if isinstance(confidence, bool) or not isinstance(confidence, int) or not 0 <= confidence <= 100:
        raise InvalidIndicatorError("confidence", f"must be a whole number from 0 to 100, got {confidence!r}")
    source_name = _text(source, "source")
    if not source_name:
        raise InvalidIndicatorError("source", "must not be empty")
    start, end = _time(valid_from, "valid_from"), _time(valid_until, "valid_until")
    if start is not None and end is not None and end <= start:
        raise InvalidIndicatorError("valid_until", "must be later than valid_from")
    return Indicator(
        key_type=kind,
        value=normalized,
        category=parse_category(category),
        severity=parse_severity(severity),
        package_name=package,
        family=_text(family, "family"),
        source=source_name,
        source_reference=_text(source_reference, "source_reference"),
        confidence=confidence,
        valid_from=start,
        valid_until=end,
        revoked=revoked,
        revoke_reason=_text(revoke_reason, "revoke_reason"),
    )
