"""server.keepalive_seconds: a command stream whose consumer went silent is found out and ends.

Core banking's consumer can vanish without a word: its host dies, or a firewall drops the
connection's state. Nothing then tells the gateway, whose stream would sit waiting to write and
hold one of the ``commands.max_streams`` places until the connection's maximum age, or for ever
when connections have none. The gateway pings such connections and drops those that do not
answer. The proxy here plays the silent network: it forwards nothing more, and resets nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from gateway.client import MtsgClient
from gateway.generated.mtsg.v1 import command_feed_service_pb2, command_feed_service_pb2_grpc
from gateway.server.start import start_gateway
from tests.gateway.conftest import take_or_refused
from tests.helpers import freezing_login, gateway_config
from tests.tcp_proxy import FaultyProxy


async def _freed_within(client: MtsgClient, seconds: float) -> bool:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        taken = await take_or_refused(client, "core-b")
        if taken is not None:
            assert [command.cursor for command in taken] == [1]
            return True
        await asyncio.sleep(0.1)
    return False


@pytest.mark.parametrize(("keepalive", "freed"), [("0.5", True), ("0", False)])
async def test_a_silent_consumer_loses_its_stream_and_frees_its_place(
    tmp_path: Path, keepalive: str, freed: bool
) -> None:
    config = gateway_config(
        tmp_path,
        commands__max_streams="1",
        server__max_connection_age_seconds="0",
        server__keepalive_seconds=keepalive,
    )
    running = await start_gateway(config)
    proxy = FaultyProxy("127.0.0.1", running.port)
    await proxy.start()
    try:
        async with MtsgClient(running.target) as client, MtsgClient(f"127.0.0.1:{proxy.port}") as far:
            await client.check_login(freezing_login())
            stream = far.commands.Subscribe(command_feed_service_pb2.SubscribeRequest(consumer_id="core-a"))
            assert (await stream.read()).command.cursor == 1
            await asyncio.sleep(1.6)  # idle through several pings, which a healthy consumer answers
            proxy.stall()
            assert await take_or_refused(client, "core-b") is None  # the silent stream holds the place
            assert await _freed_within(client, 5.0) is freed
            stream.cancel()
    finally:
        await proxy.close()
        await running.stop(grace=1.0)


@pytest.mark.parametrize(("keepalive", "stays_open"), [("0.5", True), ("0", False)])
async def test_a_consumer_may_ping_as_often_as_the_gateway_does(
    tmp_path: Path, keepalive: str, stays_open: bool
) -> None:
    """A consumer that pings to find out a vanished gateway is not taken for a flood of pings.

    grpc's own server refuses pings more often than every 5 minutes on a connection that sends no
    data, and an idle command stream sends none; a gateway that pings accepts what it sends.
    """
    config = gateway_config(tmp_path, server__max_connection_age_seconds="0", server__keepalive_seconds=keepalive)
    running = await start_gateway(config)
    pinging = [
        ("grpc.keepalive_time_ms", 500),
        ("grpc.keepalive_timeout_ms", 500),
        ("grpc.http2.max_pings_without_data", 0),  # a grpc client stops after two pings otherwise
    ]
    try:
        async with grpc.aio.insecure_channel(running.target, options=pinging) as channel:
            stub = command_feed_service_pb2_grpc.CommandFeedServiceStub(channel)
            stream = stub.Subscribe(command_feed_service_pb2.SubscribeRequest(consumer_id="core"))
            reading = asyncio.ensure_future(stream.read())
            done, _ = await asyncio.wait({reading}, timeout=8.0)  # grpc's default cut it off within 3.5-4.5 s
            if stays_open:
                assert not done, reading.exception() if reading.done() else None
            else:
                error = reading.exception()
                assert isinstance(error, grpc.aio.AioRpcError)
                assert error.details() == "Too many pings"
            stream.cancel()
    finally:
        await running.stop(grace=1.0)
