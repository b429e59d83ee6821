"""CommandFeedService: core banking pulls commands as a gRPC stream and acknowledges what it applied.

The feed is the ``commands`` table in cursor order.  A subscriber starts after its
last acknowledged cursor (or the one it names), receives everything after that
in order, and then waits: woken at once for commands this process writes, and
by polling for those written elsewhere.  Nothing is skipped on reconnect because
the position lives in the store, not in the connection.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import grpc
import structlog

from gateway.commands.building import to_proto
from gateway.errors import abort_with, invalid_argument, unavailable
from gateway.generated.mtsg.v1 import command_feed_service_pb2, command_feed_service_pb2_grpc
from gateway.generated.mtsg.v1.error_reason_pb2 import (
    ERROR_REASON_INVALID_CURSOR,
)
from gateway.runtime.wakeup import Wakeup
from gateway.store import Store, StoreUnavailableError
from gateway.violations import FieldViolation, InvalidRequestError

log = structlog.get_logger(__name__)

CONSUMER_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_PAGE = 200


async def _check(
    store: Store, context: grpc.aio.ServicerContext, consumer_id: str, cursor: int, cursor_field: str
) -> None:
    violations = []
    if not CONSUMER_ID.fullmatch(consumer_id):
        violations.append(FieldViolation("consumer_id", "required: 1 to 128 letters, digits, '.', '_', ':' or '-'"))
    if cursor < 0:
        violations.append(FieldViolation(cursor_field, f"must not be negative, got {cursor}"))
    elif cursor > 0:
        last = await store.commands.last_cursor()
        if cursor > last:
            violations.append(
                FieldViolation(
                    cursor_field,
                    f"{cursor} is past the end of the feed ({last}); was it taken from another mtsg database?",
                )
            )
    if violations:
        await abort_with(context, invalid_argument(InvalidRequestError(violations), ERROR_REASON_INVALID_CURSOR))


class CommandFeedService(command_feed_service_pb2_grpc.CommandFeedServiceServicer):
    def __init__(self, store: Store, wakeup: Wakeup, poll_interval_seconds: float, clock: Callable[[], float]) -> None:
        self._store = store
        self._wakeup = wakeup
        self._poll_interval = poll_interval_seconds
        self._clock = clock

    async def Subscribe(
        self, request: command_feed_service_pb2.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[command_feed_service_pb2.SubscribeResponse]:
        try:
            await _check(self._store, context, request.consumer_id, request.after_cursor, "after_cursor")
            position = request.after_cursor or await self._store.commands.consumer_cursor(request.consumer_id)
            log.info("command stream opened", consumer_id=request.consumer_id, after_cursor=position)
            while True:
                ticket = self._wakeup.ticket()
                page = await self._store.commands.after(position, _PAGE)
                for stored in page:
                    yield command_feed_service_pb2.SubscribeResponse(command=to_proto(stored))
                    position = stored.cursor
                if len(page) < _PAGE:
                    await self._wakeup.wait(ticket, self._poll_interval)
        except StoreUnavailableError as error:
            log.error("store unavailable", error=str(error))
            await abort_with(context, unavailable("the gateway's store is unavailable; subscribe again"))

    async def Ack(
        self, request: command_feed_service_pb2.AckRequest, context: grpc.aio.ServicerContext
    ) -> command_feed_service_pb2.AckResponse:
        try:
            await _check(self._store, context, request.consumer_id, request.cursor, "cursor")
            if request.cursor == 0:
                violation = FieldViolation("cursor", "required: the cursor of the last command applied")
                await abort_with(
                    context, invalid_argument(InvalidRequestError([violation]), ERROR_REASON_INVALID_CURSOR)
                )
            position = await self._store.commands.acknowledge(request.consumer_id, request.cursor, self._clock())
        except StoreUnavailableError as error:
            log.error("store unavailable", error=str(error))
            await abort_with(context, unavailable("the gateway's store is unavailable; acknowledge again"))
        return command_feed_service_pb2.AckResponse(acknowledged_cursor=position)
