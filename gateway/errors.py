"""Turning failures into gRPC statuses with google.rpc details (AIP-193).

Client mistakes carry ``BadRequest`` field violations so an SDK can point at the
field; every error carries ``ErrorInfo`` with a stable reason a client can branch on.
The reasons are the ``ErrorReason`` enum of the contract (proto/mtsg/v1/error_reason.proto),
so each one a client may meet is documented where the SDK's users read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from gateway.generated.mtsg.v1.error_reason_pb2 import (
    ERROR_REASON_INTERNAL,
    ERROR_REASON_INVALID_REQUEST,
    ERROR_REASON_STORE_UNAVAILABLE,
    ErrorReason,
)
from gateway.violations import FieldViolation, InvalidRequestError, Violations

Detail = TypeVar("Detail", bound=Message)

ERROR_DOMAIN = "mtsg.v1"
# The call's id, sent back in the trailers of every answer, errors included: what a caller quotes to the operators.
REQUEST_ID_KEY = "x-request-id"
# Where grpc carries the google.rpc.Status of an error answer (grpcio-status writes it there).
_STATUS_DETAILS_KEY = "grpc-status-details-bin"
# A refused login can name hundreds of fields; the log line keeps the first few and the count.
LOGGED_FIELDS = 10
# An error travels in the call's trailers, and clients refuse trailers past 8-16 KB (grpc's default
# metadata limits): an error that quoted a caller's 100 KB entry id reached the caller as
# RESOURCE_EXHAUSTED "received metadata size exceeds hard limit" instead of as itself.  So each
# text an error carries is cut (UTF-8 bytes), and field violations are listed within a budget;
# the ones past it are counted in the closing "N more problems were not listed".
MAX_MESSAGE_BYTES = 512
MAX_VIOLATION_TEXT_BYTES = 256
VIOLATIONS_BUDGET_BYTES = 4096


def _cut(text: str, max_bytes: int) -> str:
    """``text`` within ``max_bytes`` of UTF-8, ending in an ellipsis when it was cut."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[: max_bytes - 3].decode("utf-8", "ignore") + "…"


def reason_name(reason: ErrorReason) -> str:
    """What ErrorInfo.reason says for ``reason``: the enum value's name without its prefix."""
    return ErrorReason.Name(reason).removeprefix("ERROR_REASON_")


def _status(code: grpc.StatusCode, message: str, reason: ErrorReason, *details: object) -> grpc.Status:
    packed = []
    for detail in (*details, error_details_pb2.ErrorInfo(reason=reason_name(reason), domain=ERROR_DOMAIN)):
        holder = any_pb2.Any()
        holder.Pack(detail)  # type: ignore[arg-type]
        packed.append(holder)
    proto = status_pb2.Status(
        code=getattr(code_pb2, code.name), message=_cut(message, MAX_MESSAGE_BYTES), details=packed
    )
    return rpc_status.to_status(proto)


class CallEndedByTransportError(Exception):
    """grpc had already ended the call when the gateway answered, so the answer never left.

    grpc refuses a request past ``server.max_message_bytes`` or metadata past its header limit on its
    own (RESOURCE_EXHAUSTED), yet still runs the handler, which then finds no request (or no
    credentials) and answers; sending that answer fails. What the caller was told is grpc's status,
    and that is what the call's log line and metrics must say, not the answer that never left.
    """

    def __init__(self, cancelled: bool) -> None:
        super().__init__("grpc ended the call before the gateway answered")
        # CANCELLED when the caller went away; else a transport limit: RESOURCE_EXHAUSTED.
        self.code = grpc.StatusCode.CANCELLED if cancelled else grpc.StatusCode.RESOURCE_EXHAUSTED


# What the refusal counter and the log line name a call grpc refused before the gateway could.
TRANSPORT_LIMIT = "TRANSPORT_LIMIT"


async def abort_with(context: grpc.aio.ServicerContext, status: grpc.Status) -> NoReturn:
    """End the call with ``status``, keeping the trailing metadata already set (the request id to quote):
    grpc replaces it with whatever metadata ``abort`` is given.  CallEndedByTransportError when grpc had
    ended the call already."""
    kept = tuple(context.trailing_metadata() or ())
    try:
        await context.abort(status.code, status.details, (*kept, *status.trailing_metadata))
    except grpc.aio.AbortError:
        raise
    except Exception as error:  # grpc's ExecuteBatchError, private to its Cython layer: the status was sent
        raise CallEndedByTransportError(context.cancelled()) from error
    raise AssertionError("unreachable: context.abort raises")


async def refuse_if_any(context: grpc.aio.ServicerContext, violations: Violations) -> None:
    """End the call with INVALID_ARGUMENT when ``violations`` holds any; else return."""
    if violations.found:
        await abort_with(context, invalid_argument(InvalidRequestError(violations.found, violations.omitted)))


def invalid_argument(error: InvalidRequestError, reason: ErrorReason = ERROR_REASON_INVALID_REQUEST) -> grpc.Status:
    """INVALID_ARGUMENT with every violation that fits the budget, and a count of the rest."""
    listed: list[error_details_pb2.BadRequest.FieldViolation] = []
    used = 0
    for violation in error.violations:
        field = _cut(violation.field, MAX_VIOLATION_TEXT_BYTES)
        description = _cut(violation.description, MAX_VIOLATION_TEXT_BYTES)
        used += len(field.encode("utf-8")) + len(description.encode("utf-8"))
        if used > VIOLATIONS_BUDGET_BYTES:
            break
        listed.append(error_details_pb2.BadRequest.FieldViolation(field=field, description=description))
    unlisted = error.omitted + len(error.violations) - len(listed)
    if unlisted:
        listed.append(
            error_details_pb2.BadRequest.FieldViolation(
                field="", description=f"{unlisted} more problems were not listed"
            )
        )
    return _status(
        grpc.StatusCode.INVALID_ARGUMENT,
        str(error),
        reason,
        error_details_pb2.BadRequest(field_violations=listed),
    )


def failure(code: grpc.StatusCode, message: str, reason: ErrorReason) -> grpc.Status:
    """Any other canonical status, with ErrorInfo (NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION ...)."""
    return _status(code, message, reason)


def resource_exhausted(message: str, reason: ErrorReason, retry_after_seconds: float) -> grpc.Status:
    """RESOURCE_EXHAUSTED with RetryInfo: the client learns when trying again can succeed."""
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(max(1_000_000, int(retry_after_seconds * 1e9)))
    return _status(grpc.StatusCode.RESOURCE_EXHAUSTED, message, reason, error_details_pb2.RetryInfo(retry_delay=delay))


def unavailable(message: str) -> grpc.Status:
    return _status(grpc.StatusCode.UNAVAILABLE, message, ERROR_REASON_STORE_UNAVAILABLE)


def internal(request_id: str) -> grpc.Status:
    return _status(
        grpc.StatusCode.INTERNAL,
        f"internal error; quote request id {request_id} to the operators",
        ERROR_REASON_INTERNAL,
    )


def invalid_field(field: str, description: str, reason: ErrorReason = ERROR_REASON_INVALID_REQUEST) -> grpc.Status:
    """INVALID_ARGUMENT naming one field."""
    return invalid_argument(InvalidRequestError([FieldViolation(field, description)]), reason)


def details_of(status: status_pb2.Status, kind: type[Detail]) -> list[Detail]:
    """Every detail of type ``kind`` a google.rpc.Status carries, unpacked: read by the log line and the client."""
    found = []
    for detail in status.details:
        if detail.Is(kind.DESCRIPTOR):
            unpacked = kind()
            detail.Unpack(unpacked)
            found.append(unpacked)
    return found


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
    for info in details_of(status, error_details_pb2.ErrorInfo):
        summary["reason"] = info.reason
    fields = [
        violation.field
        for bad in details_of(status, error_details_pb2.BadRequest)
        for violation in bad.field_violations
    ]
    if fields:
        summary["fields"] = fields[:LOGGED_FIELDS]
        summary["field_count"] = len(fields)
    return summary
