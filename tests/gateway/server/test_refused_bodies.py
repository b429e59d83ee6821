"""A refused call's body stays with the caller: the gateway refuses before it reads the request.

Anyone who can reach the port can send requests of up to ``server.max_message_bytes``. grpc reads
a unary request whole before the handler runs, so a flood of large unauthenticated calls once had
the gateway hold gigabytes before refusing each one. Here a proxy in front of a real gateway counts
the bytes the callers got across: a refused call gets across no more than the gateway's flow-control
window, an admitted one its whole body.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from gateway.client import error_reason
from gateway.config import ServerConfig
from gateway.security.identities import new_token, token_stanza
from gateway.server.start import RunningGateway, start_gateway
from tests.helpers import gateway_config, request, telemetry
from tests.tcp_proxy import FaultyProxy

CHECK_LOGIN = "/mtsg.v1.ThreatSignalService/CheckLogin"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
# Requests far larger than the gateway's window, within the server.max_message_bytes set
# below, and not valid requests.
BODY = b"\x0a" + b"\xff" * (16_000_000 - 1)
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
SMALLER_BODY = BODY[:4_000_000]  # within the default server.max_message_bytes
WINDOW = ServerConfig().flow_control_window_bytes
CALLS = 8


@dataclass
class Guarded:
    running: RunningGateway
    proxy: FaultyProxy
    token: str


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[Guarded]:
    token = new_token()
    identities = tmp_path / "identities.toml"
    identities.write_text(token_stanza("bank-app", ["app"], token))
    config = gateway_config(
        tmp_path,
        auth__insecure="false",
        auth__identities_file=str(identities),
        server__max_message_bytes=str(MAX_MESSAGE_BYTES),
    )
    running = await start_gateway(config)
    proxy = FaultyProxy("127.0.0.1", running.port)
    await proxy.start()
    try:
        yield Guarded(running, proxy, token)
    finally:
        await proxy.close()
        await running.stop(grace=1.0)


async def _send(port: int, method: str, body: bytes, calls: int, token: str = "") -> list[grpc.aio.AioRpcError]:
    """``calls`` raw calls at once on one connection; every one must fail, and its error is returned."""
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(method)
        outcomes = await asyncio.gather(
            *(call(body, metadata=metadata, timeout=30) for _ in range(calls)), return_exceptions=True
        )
    assert all(isinstance(outcome, grpc.aio.AioRpcError) for outcome in outcomes), outcomes
    return [outcome for outcome in outcomes if isinstance(outcome, grpc.aio.AioRpcError)]


async def test_an_unauthenticated_call_is_refused_before_its_body_is_read(guarded: Guarded) -> None:
    errors = await _send(guarded.proxy.port, CHECK_LOGIN, BODY, CALLS)
    assert {error.code() for error in errors} == {grpc.StatusCode.UNAUTHENTICATED}
    # Before, all 128 MB were taken in.  Now a refused call gets no more than its window across.
    assert guarded.proxy.sent_upstream < CALLS * WINDOW + 1024 * 1024, guarded.proxy.sent_upstream


async def test_an_admitted_call_is_read_whole_and_a_body_that_is_not_protobuf_is_named(guarded: Guarded) -> None:
    errors = await _send(guarded.proxy.port, CHECK_LOGIN, BODY, 1, guarded.token)
    assert errors[0].code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(errors[0]) == "UNDECODABLE_REQUEST"
    assert guarded.proxy.sent_upstream >= len(BODY)


async def test_a_unary_call_without_its_request_message_is_invalid(guarded: Guarded) -> None:
    metadata = (("authorization", f"Bearer {guarded.token}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{guarded.running.port}") as channel:
        empty = channel.stream_unary(CHECK_LOGIN)(iter(()), metadata=metadata, timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await empty
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "carries no request message" in (caught.value.details() or "")


async def test_the_open_health_port_refuses_large_requests_unread(tmp_path: Path) -> None:
    running = await start_gateway(gateway_config(tmp_path, server__health_listen="127.0.0.1:0"))
    assert running.health_port is not None
    proxy = FaultyProxy("127.0.0.1", running.health_port)
    await proxy.start()
    try:
        errors = await _send(proxy.port, HEALTH_CHECK, SMALLER_BODY, CALLS)
        assert {error.code() for error in errors} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert proxy.sent_upstream < len(SMALLER_BODY), proxy.sent_upstream  # before: all 32 MB
    finally:
        await proxy.close()
        await running.stop(grace=1.0)


async def _refused(check: grpc.aio.UnaryUnaryMultiCallable) -> bool:
    """A fresh login (a replayed nonce would be refused for that): False when it is answered."""
    try:
        await check(request(telemetry()).SerializeToString(), timeout=5)
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        return True
    return False


async def test_a_stalled_request_holds_its_in_flight_place_only_until_the_server_deadline(tmp_path: Path) -> None:
    config = gateway_config(tmp_path, server__max_in_flight="1", server__max_call_seconds="2")
    running = await start_gateway(config)
    proxy = FaultyProxy("127.0.0.1", running.port)
    await proxy.start()
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{proxy.port}") as slow_channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel,
        ):
            check = channel.unary_unary(CHECK_LOGIN)
            proxy.stall_after(100_000)  # the call begins, and its request stops arriving
            stalled = asyncio.ensure_future(slow_channel.unary_unary(CHECK_LOGIN)(SMALLER_BODY, timeout=30))
            started = time.monotonic()
            while proxy.sent_upstream < 100_000:  # its headers are with the gateway before anyone else's
                await asyncio.sleep(0.01)
            while not await _refused(check):  # until the gateway has admitted the stalled call
                assert time.monotonic() - started < 1.5, "the stalled call never took the one place"
                await asyncio.sleep(0.05)
            # Its answer cannot reach it through the stalled proxy; the place it held is free again
            # once the gateway cut it at server.max_call_seconds.
            while await _refused(check):
                assert time.monotonic() - started < 5, "the stalled call kept its place past the server deadline"
                await asyncio.sleep(0.1)
            stalled.cancel()
    finally:
        await proxy.close()
        await running.stop(grace=1.0)
