"""The stream consumer's lag: a core system that stopped reading the command stream shows as a growing age.

Before, a bank taking its commands from CommandFeedService had nothing to alert on when its
consumer stopped: FREEZE commands waited unread, and no metric counted them.
"""

from __future__ import annotations

import asyncio
import time

from gateway.client import MtsgClient
from gateway.generated.mtsg.v1 import command_feed_service_pb2, common_pb2
from gateway.server.start import RunningGateway
from tests.gateway.conftest import take_commands
from tests.helpers import freezing_login


def _gauge(gateway: RunningGateway) -> float | None:
    return gateway.metrics.registry.get_sample_value("mtsg_command_stream_unacknowledged_seconds")


async def _ack(client: MtsgClient, consumer_id: str, cursor: int) -> None:
    request = command_feed_service_pb2.AckRequest(consumer_id=consumer_id, cursor=cursor)
    await client.commands.Ack(request, timeout=5)


async def test_the_age_of_the_oldest_unacknowledged_command_is_reported(
    gateway: RunningGateway, client: MtsgClient
) -> None:
    assert (await client.check_login(freezing_login())).action == common_pb2.ACTION_FREEZE
    assert await gateway.stream_lag.report() == 0.0  # no consumer yet: nobody is behind
    (first,) = await take_commands(client, 1)
    await _ack(client, "core", first.cursor)
    await _ack(client, "fds", first.cursor)
    assert await gateway.stream_lag.report() == 0.0
    assert _gauge(gateway) == 0.0

    written = time.time()
    assert (await client.check_login(freezing_login())).action == common_pb2.ACTION_FREEZE
    await _ack(client, "core", first.cursor + 1)  # "fds" has stopped reading
    await asyncio.sleep(0.2)

    age = await gateway.stream_lag.report()

    assert 0.2 <= age <= time.time() - written + 0.1
    assert _gauge(gateway) == age
    assert await gateway.store.commands.oldest_unacknowledged() is not None
    await _ack(client, "fds", first.cursor + 1)
    assert await gateway.stream_lag.report() == 0.0
