"""One server interceptor for what every call needs: a request id, a log line, metrics, guards.

The request id comes from the caller's ``x-request-id`` metadata when it is sane,
otherwise it is made here; it is bound into structlog's context for the duration
of the call and returned in the trailing metadata.  Unexpected exceptions become
INTERNAL with the request id to quote, never a stack trace sent to the client.
Guards (access control, the in-flight limit) run inside that frame before the request
body is even read: a refused call is logged and counted like any other, and its body is
never taken off the connection.  grpc reads a unary request whole before it calls the
handler, so every unary method is served as a request stream of which the handler reads
the one message once admitted; otherwise a thousand unauthenticated 4 MB calls had the
gateway hold 5.7 GB at once.

Every call of the gateway passes through here, so the frame is a plain class and the
guards plain coroutines: generator-based context managers stacked in an exit stack
would cost every call measurably more of the event loop's time.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any

import grpc
import structlog
from google.protobuf.message import DecodeError
from prometheus_client import Counter, Histogram

from gateway.errors import (
    REQUEST_ID_KEY,
    TRANSPORT_LIMIT,
    CallEndedByTransportError,
    abort_with,
    failure,
    internal,
    invalid_argument,
    refusal_summary,
    unavailable,
)
from gateway.generated.mtsg.v1.error_reason_pb2 import (
    ERROR_REASON_SERVER_DEADLINE,
    ERROR_REASON_UNDECODABLE_REQUEST,
)
from gateway.observability.metrics import Metrics
from gateway.store import StoreUnavailableError
from gateway.violations import FieldViolation, InvalidRequestError

log = structlog.get_logger(__name__)
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Run when an admitted call ends, however it ends.
Release = Callable[[], None]
# Awaited as each call starts, with its method name: aborts the call to refuse it, or admits
# it and returns what to run when it ends (None when there is nothing to undo).
Guard = Callable[[str, grpc.aio.ServicerContext], Awaitable[Release | None]]
# Reads an admitted call's one request message off the connection.
RequestReader = Callable[[grpc.aio.ServicerContext], Awaitable[Any]]


def _request_id(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and _SANE_ID.fullmatch(value):
            return value
    return uuid.uuid4().hex


def _code_name(context: grpc.aio.ServicerContext) -> str:
    code = context.code()
    if code is None:
        return "OK"
    if isinstance(code, grpc.StatusCode):
        return code.name
    return next((status.name for status in grpc.StatusCode if status.value[0] == code), str(code))


async def _one_message(decode: Callable[[bytes], Any] | None, context: grpc.aio.ServicerContext) -> Any:
    """The call's request, read off the connection (and decoded) only now that the call is admitted."""
    body = await context.read()
    if body is grpc.aio.EOF:
        violation = FieldViolation("", "the call carries no request message; this method takes exactly one")
        await abort_with(context, invalid_argument(InvalidRequestError([violation]), ERROR_REASON_UNDECODABLE_REQUEST))
    if decode is None:
        return body
    try:
        return decode(body)
    except DecodeError:
        violation = FieldViolation("", "the request body is not a valid protobuf message of the method's type")
        await abort_with(context, invalid_argument(InvalidRequestError([violation]), ERROR_REASON_UNDECODABLE_REQUEST))


class _ObservedCall:
    """Request id, guards, log line and metrics around one call; unexpected errors become INTERNAL."""

    __slots__ = (
        "_bound",
        "_context",
        "_ended_by_transport",
        "_interceptor",
        "_method",
        "_releases",
        "_request_id",
        "_started",
    )

    def __init__(self, interceptor: ObservabilityInterceptor, method: str, context: grpc.aio.ServicerContext) -> None:
        self._interceptor = interceptor
        self._method = method
        self._context = context
        self._request_id = _request_id(context)
        self._started = time.perf_counter()
        context.set_trailing_metadata(((REQUEST_ID_KEY, self._request_id),))
        self._bound = structlog.contextvars.bind_contextvars(request_id=self._request_id, method=method)
        self._releases: list[Release] = []
        self._ended_by_transport: CallEndedByTransportError | None = None

    async def __aenter__(self) -> None:
        """Admitted by every guard in turn; a refusal aborts the call (and still ends it in ``__aexit__``)."""
        try:
            for guard in self._interceptor.guards:
                release = await guard(self._method, self._context)
                if release is not None:
                    self._releases.append(release)
        except BaseException as error:
            await self.__aexit__(type(error), error, error.__traceback__)
            raise

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            for release in reversed(self._releases):
                release()
            if isinstance(error, CallEndedByTransportError):
                self._ended_by_transport = error
            elif isinstance(error, StoreUnavailableError):
                # A method with no answer of its own for a store that is down (a read, say): the caller
                # may retry, which INTERNAL would tell it not to; the outage has its own metrics and alert.
                log.warning("store unavailable", request_id=self._request_id, error=str(error))
                await abort_with(self._context, unavailable("the gateway's store is unavailable; retry"))
            elif isinstance(error, Exception) and not isinstance(error, grpc.aio.AbortError):
                log.error("unexpected error", request_id=self._request_id, exc_info=error)
                await abort_with(self._context, internal(self._request_id))
        except CallEndedByTransportError as ended:  # the INTERNAL or UNAVAILABLE above could not be sent either
            self._ended_by_transport = ended
        finally:
            self._interceptor.record(
                self._method, self._context, self._started, self._request_id, self._ended_by_transport
            )
            structlog.contextvars.reset_contextvars(**self._bound)
        if self._ended_by_transport is not None:
            # The way grpc is told "the status is settled" without logging a handler's error of its own.
            raise grpc.aio.AbortError() from self._ended_by_transport


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):
    """Wraps each method's handler once and keeps it: grpc asks for the handler at every call.

    The per-call work is what a bank's operators read (the log line, the metrics, the request id)
    and the guards, nothing more: wrapping anew, resolving metric labels and stacking one more
    generator context manager at every call took a large share of the throughput of a gateway
    that answers a constant.
    """

    def __init__(self, metrics: Metrics, max_call_seconds: float, guards: Sequence[Guard] = ()) -> None:
        """``max_call_seconds`` bounds every call that answers once (streams run until the caller leaves)."""
        self._metrics = metrics
        self.guards = tuple(guards)
        self._max_call_seconds = max_call_seconds
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}
        self._outcomes: dict[tuple[str, str], tuple[Counter, Histogram]] = {}

    def record(
        self,
        method: str,
        context: grpc.aio.ServicerContext,
        started: float,
        request_id: str,
        ended_by_transport: CallEndedByTransportError | None = None,
    ) -> None:
        """The call's log line and metrics, once it has ended; a refused call's line says why.

        A call grpc ended itself is recorded with the status grpc sent, not the gateway's answer.
        """
        elapsed = time.perf_counter() - started
        code = ended_by_transport.code.name if ended_by_transport else _code_name(context)
        outcome = self._outcomes.get((method, code))
        if outcome is None:
            labels = {"method": method, "code": code}
            outcome = self._metrics.rpc_requests.labels(**labels), self._metrics.rpc_duration.labels(**labels)
            self._outcomes[(method, code)] = outcome
        calls, duration = outcome
        calls.inc()
        duration.observe(elapsed)
        if ended_by_transport is not None:
            refusal: dict[str, object] = {"reason": TRANSPORT_LIMIT} if code == "RESOURCE_EXHAUSTED" else {}
        else:
            refusal = refusal_summary(context.trailing_metadata()) if code != "OK" else {}
        if "reason" in refusal:  # our own constants, so the label stays a small set
            self._metrics.rpc_refusals.labels(method=method, reason=refusal["reason"]).inc()
        log.info(
            "rpc", method=method, code=code, duration_ms=round(elapsed * 1000, 3), request_id=request_id, **refusal
        )

    def _wrap_unary(
        self, method: str, behavior: Callable[..., Awaitable[Any]], read: RequestReader | None
    ) -> Callable[..., Awaitable[Any]]:
        seconds = self._max_call_seconds

        async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
            """The server's own deadline bounds the call: a caller that set none (or a long one) cannot hold it."""
            async with _ObservedCall(self, method, context):
                try:
                    async with asyncio.timeout(seconds):
                        if read is not None:
                            request = await read(context)
                        return await behavior(request, context)
                except TimeoutError:
                    message = (
                        f"the call ran past the server's limit of {seconds:g} s (server.max_call_seconds); nothing"
                        " of it was committed unless a retry with the same request_id says so"
                    )
                    await abort_with(
                        context, failure(grpc.StatusCode.DEADLINE_EXCEEDED, message, ERROR_REASON_SERVER_DEADLINE)
                    )

        return handle

    def _wrap_stream(self, method: str, behavior: Callable[..., Any], read: RequestReader | None) -> Callable[..., Any]:
        """Streaming responses come either from an async generator or from context.write() in a coroutine."""
        if not inspect.isasyncgenfunction(behavior):
            return self._wrap_unary(method, behavior, read)

        async def handle(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async with _ObservedCall(self, method, context):
                if read is not None:
                    request = await read(context)
                async for item in behavior(request, context):
                    yield item

        return handle

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        wrapped = self._handlers.get(method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler  # unknown methods are not kept: a caller could name endless ones
        wrapped = self._wrapped(method, handler)
        self._handlers[method] = wrapped
        return wrapped

    def _wrapped(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """A unary request is served as a request stream, read once the guards admitted the call.

        It is decoded there too, not by grpc: a body that is not protobuf is the client's
        mistake (INVALID_ARGUMENT), where grpc's own decoding would answer UNKNOWN.
        """
        answer = {"response_serializer": handler.response_serializer}
        if handler.unary_unary or handler.unary_stream:
            read = functools.partial(_one_message, handler.request_deserializer)
            if handler.unary_unary:
                return grpc.stream_unary_rpc_method_handler(
                    self._wrap_unary(method, handler.unary_unary, read), **answer
                )
            return grpc.stream_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream, read), **answer
            )
        serializers = {"request_deserializer": handler.request_deserializer, **answer}
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(method, handler.stream_unary, None), **serializers
            )
        return grpc.stream_stream_rpc_method_handler(
            self._wrap_stream(method, handler.stream_stream, None), **serializers
        )
