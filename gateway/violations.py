"""The error vocabulary of every surface: a problem named by the field it is in, all of them at once.

Every client mistake becomes a ``FieldViolation`` naming the field by its path
("telemetry.installed_apps[3].apk_sha256").  ``Violations`` gathers them so an SDK developer
fixes a request in one round trip; the list is capped, because error details travel in gRPC
trailers, which are small, and a request with 100,000 bad apps must still get a readable answer.
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass, field

from google.protobuf.timestamp_pb2 import Timestamp

from blocklists.entry import CONTROL_CHARACTERS_PROBLEM, without_control_characters
from blocklists.hashes import MalformedDigestError, normalize_hex_digest

MAX_VIOLATIONS = 50
# Nothing in a login can predate 2000-01-01; earlier (or negative) times are client bugs.
EARLIEST_TIME = 946_684_800
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str
    description: str


class InvalidRequestError(ValueError):
    """The request breaks the contract; ``violations`` says where and how."""

    def __init__(self, violations: list[FieldViolation], omitted: int = 0) -> None:
        self.violations = violations
        self.omitted = omitted
        first = violations[0]
        more = len(violations) + omitted - 1
        suffix = f" (and {more} more problem{'s' if more != 1 else ''})" if more else ""
        super().__init__(f"{first.field}: {first.description}{suffix}")


@dataclass
class Violations:
    found: list[FieldViolation] = field(default_factory=list)
    omitted: int = 0

    def add(self, path: str, description: str) -> None:
        if len(self.found) < MAX_VIOLATIONS:
            self.found.append(FieldViolation(path, description))
        else:
            self.omitted += 1

    def raise_if_any(self) -> None:
        if self.found:
            raise InvalidRequestError(self.found, self.omitted)

    def text(self, path: str, value: str, *, max_length: int, required: bool = False) -> str:
        if not value:
            if required:
                self.add(path, "is required")
        elif len(value) > max_length:
            self.add(path, f"must be at most {max_length} characters, got {len(value)}")
        elif not clean_text(value, max_length):
            self.add(path, "must be printable text without control characters or surrounding spaces")
        return value

    def digest(self, path: str, value: str, *, length: int) -> str:
        if not value:
            return ""
        try:
            return normalize_hex_digest(value, length=length)
        except MalformedDigestError as error:
            self.add(path, str(error))
            return ""

    def time(
        self, path: str, stamp: Timestamp, *, latest: float, required: bool = False, earliest: float = EARLIEST_TIME
    ) -> float | None:
        """Seconds since the epoch, or None when unset (and not required)."""
        if stamp.seconds == 0 and stamp.nanos == 0:
            if required:
                self.add(path, "is required")
            return None
        if not 0 <= stamp.nanos <= 999_999_999:
            self.add(path, "nanos must be between 0 and 999999999")
            return None
        seconds = stamp.seconds + stamp.nanos / 1e9
        if earliest <= seconds <= latest and seconds >= EARLIEST_TIME:
            return seconds
        if seconds < EARLIEST_TIME:
            self.add(path, "must not be before 2000-01-01T00:00:00Z")
        elif seconds < earliest:
            self.add(path, "is too old: telemetry must be collected just before the login (a replay is refused)")
        elif seconds > latest:
            self.add(path, "must not be in the future (beyond the allowed clock skew)")
        return seconds

    def enum(self, path: str, value: int, known: Container[int]) -> None:
        if value not in known:
            self.add(path, f"unknown enum value {value}")


def control_characters(text: str) -> str | None:
    """The problem with free text a person wrote (a reason, a comment), by the registry's own rule; else None."""
    if without_control_characters(text):
        return None
    return CONTROL_CHARACTERS_PROBLEM


def clean_text(value: str, max_length: int) -> bool:
    """Empty, or short enough and printable without surrounding spaces: text ``Violations.text`` accepts."""
    return not value or (len(value) <= max_length and value.isprintable() and value == value.strip())


def request_id_or_none(path: str, request_id: str, violations: Violations) -> str | None:
    if not request_id:
        return None
    if not REQUEST_ID.fullmatch(request_id):
        violations.add(path, "must be 1 to 128 characters of A-Z a-z 0-9 . _ : -")
    return request_id
