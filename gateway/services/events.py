"""EventService.ReportPhoneNumberChange: validate, hash the numbers, store idempotently."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import structlog

from gateway.errors import abort_with, invalid_argument, unavailable
from gateway.generated.mtsg.v1 import event_service_pb2, event_service_pb2_grpc
from gateway.generated.mtsg.v1.error_reason_pb2 import (
    ERROR_REASON_INVALID_EVENT,
)
from gateway.login.validation import Limits, parse_phone_changes
from gateway.privacy.phone_hash import PhoneNumberHasher
from gateway.store import Store, StoreUnavailableError
from gateway.store.records import PhoneChangeRecord
from gateway.violations import InvalidRequestError

log = structlog.get_logger(__name__)


class EventService(event_service_pb2_grpc.EventServiceServicer):
    def __init__(self, store: Store, hasher: PhoneNumberHasher, limits: Limits, clock: Callable[[], float]) -> None:
        self._store = store
        self._hasher = hasher
        self._limits = limits
        self._clock = clock

    async def ReportPhoneNumberChange(
        self, request: event_service_pb2.ReportPhoneNumberChangeRequest, context: grpc.aio.ServicerContext
    ) -> event_service_pb2.ReportPhoneNumberChangeResponse:
        now = self._clock()
        try:
            changes = parse_phone_changes(request, self._limits, now)
        except InvalidRequestError as error:
            await abort_with(context, invalid_argument(error, ERROR_REASON_INVALID_EVENT))
        records = [
            PhoneChangeRecord(
                event_id=change.event_id,
                customer_id=change.customer_id,
                previous_number_hash=self._hasher.hash(change.previous_number),
                new_number_hash=self._hasher.hash(change.new_number),
                hash_key_id=self._hasher.key_id,
                changed_at=change.changed_at,
                kind=change.kind,
                source=change.source,
                received_at=now,
            )
            for change in changes
        ]
        try:
            accepted, duplicates = await self._store.record_phone_changes(records)
        except StoreUnavailableError as error:
            log.error("store unavailable", error=str(error))
            await abort_with(context, unavailable("the gateway's store is unavailable; retry the batch"))
        log.info("phone number changes stored", accepted=accepted, duplicates=duplicates)
        return event_service_pb2.ReportPhoneNumberChangeResponse(accepted_count=accepted, duplicate_count=duplicates)
