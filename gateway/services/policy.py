"""PolicyService: the security team changes the detection policy over gRPC, without a restart.

Apply and rollback validate first and store a new version; this gateway swaps it
in before answering (``on_change``), others at their next poll.  A bad document
is refused with every problem as a field violation and nothing is stored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import grpc
import structlog
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.errors import abort_with, failure, invalid_argument, invalid_field, unavailable
from gateway.generated.mtsg.v1 import policy_service_pb2, policy_service_pb2_grpc
from gateway.generated.mtsg.v1.error_reason_pb2 import (
    ERROR_REASON_INVALID_POLICY,
    ERROR_REASON_POLICY_VERSION_NOT_FOUND,
    ERROR_REASON_REQUEST_ID_REUSED,
)
from gateway.policy.admin import (
    MAX_DOCUMENT_BYTES,
    PolicyVersionNotFoundError,
    apply_policy,
    parse_version,
    rollback_policy,
)
from gateway.services.callers import caller_actor
from gateway.store import Store, StoreUnavailableError
from gateway.store.errors import RequestIdReusedError
from gateway.store.records import StoredPolicy
from gateway.violations import FieldViolation, InvalidRequestError, Violations, control_characters, request_id_or_none
from signals.policy_document import PolicyError, Problem, read_policy
from signals.policy_review import review_policy

_Written = TypeVar("_Written")

log = structlog.get_logger(__name__)
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_COMMENT_LENGTH = 1000


def policy_message(stored: StoredPolicy, *, with_document: bool = True) -> policy_service_pb2.Policy:
    applied_at = Timestamp()
    applied_at.FromNanoseconds(int(stored.applied_at * 1e9))
    return policy_service_pb2.Policy(
        version=str(stored.version),
        document=stored.document if with_document else "",
        applied_by=stored.applied_by,
        applied_at=applied_at,
        comment=stored.comment,
        restored_version=str(stored.restored_version) if stored.restored_version else "",
        document_sha256=stored.document_sha256,
    )


def _not_found(error: PolicyVersionNotFoundError) -> grpc.Status:
    return failure(grpc.StatusCode.NOT_FOUND, str(error), ERROR_REASON_POLICY_VERSION_NOT_FOUND)


def _problems_status(error: PolicyError) -> grpc.Status:
    violations = [FieldViolation("document", str(problem)) for problem in error.problems]
    return invalid_argument(InvalidRequestError(violations), ERROR_REASON_INVALID_POLICY)


def _problem_messages(problems: Sequence[Problem]) -> list[policy_service_pb2.PolicyProblem]:
    return [policy_service_pb2.PolicyProblem(location=p.location, message=p.message) for p in problems]


def _check_admin_fields(request_id: str, comment: str) -> None:
    violations = Violations()
    request_id_or_none("request_id", request_id, violations)
    if len(comment) > MAX_COMMENT_LENGTH:
        violations.add("comment", f"must be at most {MAX_COMMENT_LENGTH} characters")
    elif problem := control_characters(comment):
        violations.add("comment", problem)
    violations.raise_if_any()


def _check_document(document: str) -> None:
    if not document.strip():
        raise InvalidRequestError([FieldViolation("document", "is required: the policy document (TOML)")])
    if len(document.encode("utf-8")) > MAX_DOCUMENT_BYTES:
        raise InvalidRequestError([FieldViolation("document", f"must be at most {MAX_DOCUMENT_BYTES} bytes")])


class PolicyService(policy_service_pb2_grpc.PolicyServiceServicer):
    def __init__(self, store: Store, on_change: Callable[[], Awaitable[object]], clock: Callable[[], float]) -> None:
        self._store = store
        self._on_change = on_change
        self._clock = clock

    async def _write(self, context: grpc.aio.ServicerContext, write: Awaitable[_Written]) -> _Written:
        """Run an apply or rollback, turn its failures into statuses, and swap the new version in here."""
        try:
            written = await write
        except PolicyVersionNotFoundError as error:
            await abort_with(context, _not_found(error))
        except PolicyError as error:
            await abort_with(context, _problems_status(error))
        except RequestIdReusedError as error:
            await abort_with(context, invalid_field("request_id", str(error), ERROR_REASON_REQUEST_ID_REUSED))
        except StoreUnavailableError:
            await abort_with(context, unavailable("the policy store is unavailable; retry with the same request_id"))
        try:
            await self._on_change()
        except Exception:  # committed; the refresher's next poll swaps it in
            log.exception("swapping in the new policy failed; the next poll retries")
        return written

    async def GetPolicy(
        self, request: policy_service_pb2.GetPolicyRequest, context: grpc.aio.ServicerContext
    ) -> policy_service_pb2.GetPolicyResponse:
        try:
            version = parse_version(request.version) if request.version else None
            stored = await self._store.policies.get(version)
        except PolicyVersionNotFoundError as error:
            await abort_with(context, _not_found(error))
        except StoreUnavailableError:
            await abort_with(context, unavailable("the policy store is unavailable; retry"))
        if stored is None:
            await abort_with(context, _not_found(PolicyVersionNotFoundError(request.version or "(in force)")))
        return policy_service_pb2.GetPolicyResponse(policy=policy_message(stored))

    async def ValidatePolicy(
        self, request: policy_service_pb2.ValidatePolicyRequest, context: grpc.aio.ServicerContext
    ) -> policy_service_pb2.ValidatePolicyResponse:
        try:
            _check_document(request.document)
        except InvalidRequestError as error:
            await abort_with(context, invalid_argument(error, ERROR_REASON_INVALID_POLICY))
        try:
            warnings = review_policy(read_policy(request.document, ""))
            problems: list[Problem] = []
        except PolicyError as error:
            problems, warnings = error.problems, []
        return policy_service_pb2.ValidatePolicyResponse(
            valid=not problems, problems=_problem_messages(problems), warnings=_problem_messages(warnings)
        )

    async def ApplyPolicy(
        self, request: policy_service_pb2.ApplyPolicyRequest, context: grpc.aio.ServicerContext
    ) -> policy_service_pb2.ApplyPolicyResponse:
        try:
            _check_admin_fields(request.request_id, request.comment)
            _check_document(request.document)
        except InvalidRequestError as error:
            await abort_with(context, invalid_argument(error, ERROR_REASON_INVALID_POLICY))
        applied = await self._write(
            context,
            apply_policy(
                self._store,
                request.document,
                actor=caller_actor(context),
                comment=request.comment.strip(),
                at=self._clock(),
                request_id=request.request_id,
            ),
        )
        stored = applied.stored
        if applied.created:
            log.info("policy applied", version=stored.version, actor=stored.applied_by)
        return policy_service_pb2.ApplyPolicyResponse(
            policy=policy_message(stored),
            warnings=_problem_messages(applied.warnings),
            already_in_force=not applied.created,
        )

    async def ListPolicyVersions(
        self, request: policy_service_pb2.ListPolicyVersionsRequest, context: grpc.aio.ServicerContext
    ) -> policy_service_pb2.ListPolicyVersionsResponse:
        violations = Violations()
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            violations.add("page_size", f"must be from 1 to {MAX_PAGE_SIZE}, or 0 for {DEFAULT_PAGE_SIZE}")
        before = 0
        if request.page_token:
            try:
                before = parse_version(request.page_token)
            except PolicyVersionNotFoundError:
                violations.add("page_token", "is not a token this service returned")
        try:
            violations.raise_if_any()
        except InvalidRequestError as error:
            await abort_with(context, invalid_argument(error))
        size = request.page_size or DEFAULT_PAGE_SIZE
        try:
            page = await self._store.policies.versions(size + 1, before)
        except StoreUnavailableError:
            await abort_with(context, unavailable("the policy store is unavailable; retry"))
        more = len(page) > size
        page = page[:size]
        return policy_service_pb2.ListPolicyVersionsResponse(
            policies=[policy_message(stored, with_document=False) for stored in page],
            next_page_token=str(page[-1].version) if more else "",
        )

    async def RollbackPolicy(
        self, request: policy_service_pb2.RollbackPolicyRequest, context: grpc.aio.ServicerContext
    ) -> policy_service_pb2.RollbackPolicyResponse:
        try:
            _check_admin_fields(request.request_id, request.comment)
            if not request.version:
                raise InvalidRequestError([FieldViolation("version", "is required: the earlier version to restore")])
        except InvalidRequestError as error:
            await abort_with(context, invalid_argument(error))
        stored = await self._write(
            context,
            rollback_policy(
                self._store,
                request.version,
                actor=caller_actor(context),
                comment=request.comment.strip(),
                at=self._clock(),
                request_id=request.request_id,
            ),
        )
        log.info("policy rolled back", version=stored.version, restored=stored.restored_version)
        return policy_service_pb2.RollbackPolicyResponse(policy=policy_message(stored))
