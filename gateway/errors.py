"""Turning failures into gRPC statuses with google.rpc details (AIP-193).

Client mistakes carry ``BadRequest`` field violations so an SDK can point at the
field; every error carries ``ErrorInfo`` with a stable reason for dashboards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from gateway.validation import FieldViolation, InvalidRequestError

ERROR_DOMAIN = "mtsg.v1"
# The call's id, sent back in the trailers of every answer, errors included: what a caller quotes to the operators.
REQUEST_ID_KEY = "x-request-id"
# Where grpc carries the google.rpc.Status of an error answer (grpcio-status writes it there).
_STATUS_DETAILS_KEY = "grpc-status-details-bin"
# A refused login can name hundreds of fields; the log line keeps the first few and the count.
LOGGED_FIELDS = 10


def _status(code: grpc.StatusCode, message: str, reason: str, *details: object) -> grpc.Status:
    packed = []
    for detail in (*details, error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN)):
        holder = any_pb2.Any()
        holder.Pack(detail)  # type: ignore[arg-type]
        packed.append(holder)
    proto = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=packed)
    return rpc_status.to_status(proto)


async def abort_with(context: grpc.aio.ServicerContext, status: grpc.Status) -> NoReturn:
    """End the call with ``status``, keeping the trailing metadata already set (the request id to quote):
    grpc replaces it with whatever metadata ``abort`` is given."""
    kept = tuple(context.trailing_metadata() or ())
    await context.abort(status.code, status.details, (*kept, *status.trailing_metadata))
    raise AssertionError("unreachable: context.abort raises")


def invalid_argument(error: InvalidRequestError, reason: str = "INVALID_REQUEST") -> grpc.Status:
    violations = [
        error_details_pb2.BadRequest.FieldViolation(field=violation.field, description=violation.description)
        for violation in error.violations
    ]
    if error.omitted:
        violations.append(
            error_details_pb2.BadRequest.FieldViolation(
                field="", description=f"{error.omitted} more problems were not listed"
            )
        )
    return _status(
        grpc.StatusCode.INVALID_ARGUMENT,
        str(error),
        reason,
        error_details_pb2.BadRequest(field_violations=violations),
    )


def failure(code: grpc.StatusCode, message: str, reason: str) -> grpc.Status:
    """Any other canonical status, with ErrorInfo (NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION ...)."""
    return _status(code, message, reason)


def resource_exhausted(message: str, reason: str, retry_after_seconds: float) -> grpc.Status:
    """RESOURCE_EXHAUSTED with RetryInfo: the client learns when trying again can succeed."""
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(max(1_000_000, int(retry_after_seconds * 1e9)))
    return _status(grpc.StatusCode.RESOURCE_EXHAUSTED, message, reason, error_details_pb2.RetryInfo(retry_delay=delay))


def unavailable(message: str, reason: str = "STORE_UNAVAILABLE") -> grpc.Status:
    return _status(grpc.StatusCode.UNAVAILABLE, message, reason)


def internal(request_id: str) -> grpc.Status:
    return _status(
        grpc.StatusCode.INTERNAL, f"internal error; quote request id {request_id} to the operators", "INTERNAL"
    )


def invalid_field(field: str, description: str, reason: str = "INVALID_REQUEST") -> grpc.Status:
    """INVALID_ARGUMENT naming one field."""
    return invalid_argument(InvalidRequestError([FieldViolation(field, description)]), reason)


def refusal_summary(trailing_metadata: Sequence[tuple[str, str | bytes]] | None) -> dict[str, object]:
    """What an error answer told its caller, for the call's log line: the ErrorInfo reason and the
    paths of the fields it named.  Not their descriptions, which may quote the telemetry (never logged)."""
    details = next((value for key, value in trailing_metadata or () if key == _STATUS_DETAILS_KEY), None)
    if not isinstance(details, bytes):
        return {}
    try:
        status = status_pb2.Status.FromString(details)
    except DecodeError:
        return {}
    summary: dict[str, object] = {}
    fields: list[str] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            summary["reason"] = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            fields.extend(violation.field for violation in bad_request.field_violations)
    if fields:
        summary["fields"] = fields[:LOGGED_FIELDS]
        summary["field_count"] = len(fields)
    return summary
