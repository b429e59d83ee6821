"""server.max_connection_age_seconds: a real client connection is asked to reconnect, and does, without an error."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.server.start import start_gateway
from tests.helpers import gateway_config


async def _state_after(channel: grpc.aio.Channel, seconds: float) -> grpc.ChannelConnectivity:
    """The channel's state once it has left READY, or READY if it stayed there ``seconds``."""
    deadline = time.monotonic() + seconds
    state = channel.get_state()
    while state == grpc.ChannelConnectivity.READY and (left := deadline - time.monotonic()) > 0:
        try:
            await asyncio.wait_for(channel.wait_for_state_change(state), timeout=left)
        except TimeoutError:
            break
        state = channel.get_state()
    return state


@pytest.mark.parametrize(("age", "reconnects"), [("0.5", True), ("0", False)])
async def test_a_client_connection_is_asked_to_reconnect_after_the_max_age(
    tmp_path: Path, age: str, reconnects: bool
) -> None:
    running = await start_gateway(gateway_config(tmp_path, server__max_connection_age_seconds=age))
    try:
        async with grpc.aio.insecure_channel(running.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            assert (await health.Check(health_pb2.HealthCheckRequest(), timeout=5)).status == 1  # SERVING
            assert channel.get_state() == grpc.ChannelConnectivity.READY
            state = await _state_after(channel, 3.0)
            assert (state != grpc.ChannelConnectivity.READY) is reconnects, state
            # Either way the next call is answered: a reconnect costs the client nothing but a handshake.
            assert (await health.Check(health_pb2.HealthCheckRequest(), timeout=5)).status == 1
    finally:
        await running.stop(grace=1.0)
