"""The interceptor's frame around every call, on a real grpc.aio server: what a failing call leaves behind.

The gateway's own services rarely fail unexpectedly, so these calls go to a small service of
raw-bytes methods built for the purpose, served through the very interceptor and guard the
gateway uses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import grpc
import pytest
import structlog

from gateway.errors import REQUEST_ID_KEY, abort_with, failure
from gateway.generated.mtsg.v1.error_reason_pb2 import ERROR_REASON_MISSING_ROLE
from gateway.observability.metrics import Metrics
from gateway.security.rate_limits import InFlightLimit, answers_once
from gateway.server.interceptor import ObservabilityInterceptor

SERVICE = "test.Probe"
EXPLODE, STREAM, ANSWER = f"/{SERVICE}/Explode", f"/{SERVICE}/Stream", f"/{SERVICE}/Answer"


async def _explode(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise RuntimeError("a bug the caller must not see")


async def _stream_then_explode(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    yield b"first"
    raise RuntimeError("a bug halfway through a stream")


async def _answer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return structlog.contextvars.get_contextvars().get("request_id", "").encode()


async def _refuse_when_asked(method: str, context: grpc.aio.ServicerContext) -> Callable[[], None] | None:
    if dict(context.invocation_metadata() or ()).get("refuse") == "yes":
        await abort_with(
            context, failure(grpc.StatusCode.PERMISSION_DENIED, "refused by the test guard", ERROR_REASON_MISSING_ROLE)
        )
    return None


class _Served:
    def __init__(self, server: grpc.aio.Server, port: int, metrics: Metrics, in_flight: InFlightLimit) -> None:
        self.server, self.port, self.metrics, self.in_flight = server, port, metrics, in_flight

    def calls(self, method: str, code: str) -> float:
        return self.metrics.rpc_requests.labels(method=method, code=code)._value.get()


@pytest.fixture
async def served() -> AsyncIterator[_Served]:
    metrics = Metrics.create()
    in_flight = InFlightLimit(10, metrics, answers_once(frozenset()))
    interceptor = ObservabilityInterceptor(metrics, 5.0, guards=(in_flight.admit, _refuse_when_asked))
    server = grpc.aio.server(interceptors=[interceptor])
    handlers = {
        "Explode": grpc.unary_unary_rpc_method_handler(_explode),
        "Stream": grpc.unary_stream_rpc_method_handler(_stream_then_explode),
        "Answer": grpc.unary_unary_rpc_method_handler(_answer),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield _Served(server, port, metrics, in_flight)
    finally:
        await server.stop(grace=None)


async def test_an_unexpected_error_becomes_internal_with_the_request_id_to_quote(served: _Served) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        call = channel.unary_unary(EXPLODE)(b"", metadata=((REQUEST_ID_KEY, "req-explode-1"),))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        trailing = dict(await call.trailing_metadata() or ())
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert caught.value.details() == "internal error; quote request id req-explode-1 to the operators"
    assert "RuntimeError" not in str(caught.value.debug_error_string())  # no stack trace to the client
    assert trailing[REQUEST_ID_KEY] == "req-explode-1"
    assert served.calls(EXPLODE, "INTERNAL") == 1
    assert served.in_flight.in_flight == 0  # the guard's slot is given back when the call fails


async def test_a_stream_that_fails_halfway_ends_internal_and_gives_its_slot_back(served: _Served) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        stream = channel.unary_stream(STREAM)(b"")
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for item in stream:
                received.append(item)
    assert received == [b"first"]
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert served.calls(STREAM, "INTERNAL") == 1
    assert served.in_flight.in_flight == 0


async def test_a_refusing_guard_is_counted_and_releases_the_guards_before_it(served: _Served) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary(ANSWER)(b"", metadata=(("refuse", "yes"),))
        answered = await channel.unary_unary(ANSWER)(b"", metadata=((REQUEST_ID_KEY, "req-answer-2"),))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert served.calls(ANSWER, "PERMISSION_DENIED") == 1
    assert served.in_flight.in_flight == 0  # admitted by the in-flight guard first, released on the refusal
    assert answered == b"req-answer-2"  # the call's own request id is bound for the handler's log lines
    assert served.calls(ANSWER, "OK") == 1
