"""Errors stay small enough for the trailers they travel in, whatever the caller sent."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

from gateway.errors import (
    MAX_MESSAGE_BYTES,
    MAX_VIOLATION_TEXT_BYTES,
    VIOLATIONS_BUDGET_BYTES,
    details_of,
    failure,
    invalid_argument,
)
from gateway.generated.mtsg.v1.error_reason_pb2 import ERROR_REASON_ENTRY_NOT_FOUND
from gateway.violations import FieldViolation, InvalidRequestError


def _details(status: grpc.Status) -> tuple[bytes, list[tuple[str, str]]]:
    (blob,) = [value for key, value in status.trailing_metadata if key == "grpc-status-details-bin"]
    bad_requests = details_of(status_pb2.Status.FromString(blob), error_details_pb2.BadRequest)
    return blob, [
        (violation.field, violation.description) for bad in bad_requests for violation in bad.field_violations
    ]


def test_long_violations_are_cut_and_listed_within_the_budget_with_the_rest_counted() -> None:
    violations = [FieldViolation(f"document.key{index}", "got " + "v" * 5_000) for index in range(50)]
    blob, listed = _details(invalid_argument(InvalidRequestError(violations, omitted=7)))
    *shown, closing = listed
    assert shown and all(len(description.encode()) <= MAX_VIOLATION_TEXT_BYTES for _, description in shown)
    assert all(description.endswith("…") for _, description in shown)
    assert sum(len(field) + len(description.encode()) for field, description in shown) <= VIOLATIONS_BUDGET_BYTES
    assert closing == ("", f"{50 + 7 - len(shown)} more problems were not listed")
    assert len(blob) < 5_000


def test_short_violations_are_all_listed_untouched() -> None:
    violations = [
        FieldViolation(f"telemetry.installed_apps[{index}].apk_sha256", "must be 64 hex digits") for index in range(50)
    ]
    _, listed = _details(invalid_argument(InvalidRequestError(violations)))
    assert listed == [(violation.field, violation.description) for violation in violations]


def test_a_long_message_is_cut_on_a_character_boundary() -> None:
    status = failure(grpc.StatusCode.NOT_FOUND, "no entry " + "가" * 10_000, ERROR_REASON_ENTRY_NOT_FOUND)
    assert len(status.details.encode("utf-8")) <= MAX_MESSAGE_BYTES
    assert status.details.startswith("no entry 가가") and status.details.endswith("…")
    assert "\ufffd" not in status.details
