"""Feed formats: each turns a publisher's file into ``Indicator`` values, and back.

Readers are generators so the shell can stream large feeds, count progress and
stage everything in one transaction; the first bad record stops the read with a
``FeedFormatError`` that says where it is (line or object number), so an import
is all or nothing and the operator knows what to fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from blocklists.entry import InvalidIndicatorError


class FeedFormatError(ValueError):
    """A feed record is not valid; ``location`` says where ("line 12", "object 3")."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message


@dataclass
class ReadStats:
    """What a read skipped and why, for the import report."""

    skipped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    # How far a reader of a whole parsed document has gone through it, for a progress line:
    # the items read so far of ``total`` (0: the reader does not know).
    read: int = 0
    total: int = 0

    def skip(self, reason: str) -> None:
        self.skipped += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


def parse_timestamp(text: str) -> float:
    """RFC 3339 / ISO 8601 text to epoch seconds; a time without a zone is taken as UTC."""
    raw = text.strip()
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{raw[:40]!r} is not an RFC 3339 time like 2026-01-31T12:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = moment.timestamp()
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{raw[:40]!r} is before 1970")
    return seconds


def timestamp_field(raw: object, field: str) -> float | None:
    """An optional RFC 3339 field of a feed record: None or "" mean unset; anything else must parse."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise InvalidIndicatorError(field, "must be an RFC 3339 timestamp string")
    try:
        return parse_timestamp(raw)
    except ValueError as error:
        raise InvalidIndicatorError(field, str(error)) from None


def format_timestamp(seconds: float) -> str:
    """Epoch seconds to RFC 3339 UTC with millisecond precision, as STIX writes it."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
