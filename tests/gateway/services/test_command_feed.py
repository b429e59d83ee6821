"""CommandFeedService: core banking pulls commands over a real gRPC stream and acknowledges them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from gateway.client import MtsgClient, error_reason, field_violations
from gateway.generated.mtsg.v1 import command_feed_service_pb2
from gateway.server.start import RunningGateway, start_gateway
from tests.gateway.conftest import eventually, take_commands, take_or_refused
from tests.helpers import freezing_login, gateway_config, telemetry


async def test_the_stream_delivers_in_order_and_a_reconnect_resumes_after_the_ack(
    gateway: RunningGateway, client: MtsgClient
) -> None:
    verdicts = [await client.check_login(freezing_login()) for _ in range(3)]
    first = await take_commands(client, 2)
    assert [command.verdict_id for command in first] == [verdict.verdict_id for verdict in verdicts[:2]]
    assert [command.cursor for command in first] == [1, 2]
    assert first[0].type == command_feed_service_pb2.COMMAND_TYPE_FREEZE_ACCOUNT
    ack = await client.commands.Ack(command_feed_service_pb2.AckRequest(consumer_id="core", cursor=1), timeout=5)
    assert ack.acknowledged_cursor == 1
    resumed = await take_commands(client, 2)
    assert [command.cursor for command in resumed] == [2, 3]
    # Another consumer has its own position; an explicit cursor overrides the stored one.
    assert [command.cursor for command in await take_commands(client, 1, consumer_id="fds")] == [1]
    assert [command.cursor for command in await take_commands(client, 1, after=2)] == [3]


async def test_a_subscriber_that_caught_up_receives_new_commands_as_they_are_written(client: MtsgClient) -> None:
    waiting = asyncio.create_task(take_commands(client, 1, consumer_id="live"))
    await asyncio.sleep(0.3)
    verdict = await client.check_login(freezing_login())
    received = await waiting
    assert received[0].verdict_id == verdict.verdict_id


async def test_acknowledgements_never_move_back(client: MtsgClient) -> None:
    for _ in range(3):
        await client.check_login(freezing_login())
    await client.commands.Ack(command_feed_service_pb2.AckRequest(consumer_id="core", cursor=3), timeout=5)
    again = await client.commands.Ack(command_feed_service_pb2.AckRequest(consumer_id="core", cursor=1), timeout=5)
    assert again.acknowledged_cursor == 3


@pytest.mark.parametrize(
    ("consumer_id", "cursor", "field"),
    [
        ("", 0, "consumer_id"),
        ("x" * 129, 0, "consumer_id"),
        ("core bank", 0, "consumer_id"),
        ("core", -1, "after_cursor"),
        ("core", 99, "after_cursor"),
    ],
)
async def test_bad_subscriptions_are_refused_naming_the_field(
    client: MtsgClient, consumer_id: str, cursor: int, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await take_commands(client, 1, consumer_id=consumer_id, after=cursor)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [name for name, _ in field_violations(raised.value)]


@pytest.mark.parametrize(("cursor", "message"), [(0, "required"), (5, "past the end"), (-2, "negative")])
async def test_bad_acks_are_refused_and_change_nothing(client: MtsgClient, cursor: int, message: str) -> None:
    await client.check_login(freezing_login())
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.commands.Ack(command_feed_service_pb2.AckRequest(consumer_id="core", cursor=cursor), timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert any(message in description for _, description in field_violations(raised.value))
    ack = await client.commands.Ack(command_feed_service_pb2.AckRequest(consumer_id="core", cursor=1), timeout=5)
    assert ack.acknowledged_cursor == 1


async def test_streams_past_the_limit_are_refused_and_a_closed_one_frees_its_slot(
    tmp_path: Path, store_url: str
) -> None:
    running = await start_gateway(gateway_config(tmp_path, store_url, metrics=True, commands__max_streams="2"))
    held: list[grpc.aio.UnaryStreamCall] = []  # type: ignore[type-arg]
    try:
        async with MtsgClient(running.target) as client:
            await client.check_login(freezing_login())
            for consumer in ("core-a", "core-b"):  # each admitted: it has received the one command
                call = client.commands.Subscribe(command_feed_service_pb2.SubscribeRequest(consumer_id=consumer))
                assert (await call.read()).command.cursor == 1
                held.append(call)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await take_commands(client, 1, consumer_id="core-c")
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert error_reason(refused.value) == "TOO_MANY_STREAMS"
            assert "commands.max_streams" in (refused.value.details() or "")
            assert (await client.check_login(telemetry())).action  # logins are not counted against streams
            held.pop().cancel()
            (command,) = await eventually(lambda: take_or_refused(client, "core-c"), what="a freed slot")
            assert command.cursor == 1
        assert running.metrics.rate_limited.labels(limit="command_streams")._value.get() >= 1
    finally:
        for call in held:
            call.cancel()
        await running.stop(grace=1.0)
