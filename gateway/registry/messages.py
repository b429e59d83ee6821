"""Converting registry entries between protobuf messages and the core's dataclasses."""

from __future__ import annotations

import base64
import binascii

from google.protobuf.timestamp_pb2 import Timestamp

from blocklists.entry import Category, Entry, EntrySeverity, Indicator, InvalidIndicatorError, KeyType, make_indicator
from gateway.generated.mtsg.v1 import blocklist_pb2, common_pb2
from gateway.violations import FieldViolation, InvalidRequestError

KEY_TYPE_NUMBER = {kind: blocklist_pb2.BlocklistKeyType.Value(f"BLOCKLIST_KEY_TYPE_{kind.name}") for kind in KeyType}
_CATEGORIES = {
    category: blocklist_pb2.ThreatCategory.Value(f"THREAT_CATEGORY_{category.name}") for category in Category
}
_SEVERITIES = {severity: common_pb2.Severity.Value(f"SEVERITY_{severity.name}") for severity in EntrySeverity}
KEY_TYPE_OF = {number: kind for kind, number in KEY_TYPE_NUMBER.items()}
CATEGORY_OF = {number: category for category, number in _CATEGORIES.items()}
_SEVERITY_OF = {number: severity for severity, number in _SEVERITIES.items()}
CATEGORY_NUMBER = {category.value: number for category, number in _CATEGORIES.items()}


def _timestamp(seconds: float | None) -> Timestamp | None:
    if seconds is None:
        return None
    stamp = Timestamp()
    stamp.FromNanoseconds(round(seconds * 1e9))
    return stamp


def entry_message(entry: Entry) -> blocklist_pb2.BlocklistEntry:
    indicator = entry.indicator
    return blocklist_pb2.BlocklistEntry(
        entry_id=entry.entry_id,
        key_type=KEY_TYPE_NUMBER[indicator.key_type],
        value=indicator.value,
        package_name=indicator.package_name,
        category=_CATEGORIES[indicator.category],
        severity=_SEVERITIES[indicator.severity],
        family=indicator.family,
        source=indicator.source,
        source_reference=indicator.source_reference,
        confidence=indicator.confidence,
        valid_from=_timestamp(indicator.valid_from),
        valid_until=_timestamp(indicator.valid_until),
        revoked=indicator.revoked,
        revoke_reason=indicator.revoke_reason,
        created_at=_timestamp(entry.created_at),
        created_by=entry.created_by,
        modified_at=_timestamp(entry.modified_at),
        modified_by=entry.modified_by,
    )


def indicator_from_message(message: blocklist_pb2.BlocklistEntry, field: str = "entry") -> Indicator:
    """Validate an entry sent by an admin client; every problem of the enums at once, then the values."""
    violations: list[FieldViolation] = []
    kind = KEY_TYPE_OF.get(message.key_type)
    if kind is None:
        violations.append(FieldViolation(f"{field}.key_type", "is required: apk_sha256, cert_sha256, ..."))
    category = CATEGORY_OF.get(message.category)
    if category is None:
        violations.append(FieldViolation(f"{field}.category", "is required"))
    severity = _SEVERITY_OF.get(message.severity, EntrySeverity.HIGH)
    if message.severity not in (0, *_SEVERITY_OF):
        violations.append(FieldViolation(f"{field}.severity", "must be LOW, MEDIUM, HIGH or CRITICAL"))
    if message.revoked:
        violations.append(FieldViolation(f"{field}.revoked", "add an active entry; revoke with RevokeEntry"))
    if violations or kind is None or category is None:
        raise InvalidRequestError(violations)
    try:
        return make_indicator(
            key_type=kind,
            value=message.value,
            category=category,
            severity=severity,
            package_name=message.package_name,
            family=message.family,
            source=message.source or "manual",
            source_reference=message.source_reference,
            confidence=message.confidence if message.confidence else 50,
            valid_from=message.valid_from.ToNanoseconds() / 1e9 if message.HasField("valid_from") else None,
            valid_until=message.valid_until.ToNanoseconds() / 1e9 if message.HasField("valid_until") else None,
        )
    except InvalidIndicatorError as error:
        raise InvalidRequestError([FieldViolation(f"{field}.{error.field}", error.message)]) from None


def page_token(entry_id: str) -> str:
    return base64.urlsafe_b64encode(entry_id.encode()).decode() if entry_id else ""


def entry_id_from_token(token: str) -> str:
    """The entry id a page token carries; a token that decodes to anything no entry id can be is refused."""
    if not token:
        return ""
    refused = InvalidRequestError([FieldViolation("page_token", "is not a token this service returned")])
    try:
        entry_id = base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise refused from None
    if not entry_id.isprintable():  # a NUL would even reach PostgreSQL's query and fail there
        raise refused
    return entry_id
