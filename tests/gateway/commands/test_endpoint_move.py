"""An endpoint whose URL changed: its pending deliveries are reported, and reach the new URL once moved.

Before, a FREEZE waiting for the old URL stayed pending with nothing to send it and nothing saying so.
"""

from __future__ import annotations

import time
from pathlib import Path

import structlog.testing

from gateway.client import MtsgClient
from gateway.generated.mtsg.v1 import common_pb2
from gateway.server.start import RunningGateway, start_gateway
from tests.gateway.conftest import ReceiverKeyFiles, RunningReceiver, eventually, push_config
from tests.helpers import freezing_login

OLD = "http://127.0.0.1:9/commands"  # nothing listens there: the delivery stays pending


def _stranded(gateway: RunningGateway, endpoint: str) -> float | None:
    return gateway.metrics.registry.get_sample_value("mtsg_command_stranded_deliveries", {"endpoint": endpoint})


async def test_deliveries_left_at_an_old_url_are_reported_and_sent_to_the_new_one_once_moved(
    tmp_path: Path, key_files: ReceiverKeyFiles, receiver: RunningReceiver, store_url: str
) -> None:
    before = await start_gateway(push_config(tmp_path, key_files, OLD, store_url, max_attempts=1000))
    try:
        async with MtsgClient(before.target) as client:
            assert (await client.check_login(freezing_login())).action == common_pb2.ACTION_FREEZE
        await eventually(lambda: before.store.commands.attempts(1), what="a failed attempt at the old URL")
    finally:
        await before.stop(grace=1.0)

    with structlog.testing.capture_logs() as logs:
        after = await start_gateway(push_config(tmp_path, key_files, receiver.url, store_url))
    try:
        reported = [entry for entry in logs if "no longer in commands.endpoint_urls" in entry["event"]]
        assert [entry["stranded"] for entry in reported] == [{OLD: 1}]
        await eventually(lambda: _stranded(after, OLD) == 1, what="the stranded gauge")
        assert receiver.applied() == []

        moved = await after.store.commands.move_pending(OLD, receiver.url, time.time(), "test:operator")

        assert (moved.moved, moved.kept, moved.sending) == (1, 0, 0)
        applied = await eventually(receiver.applied, what="the moved command's arrival")
        assert [row["type"] for row in applied] == ["COMMAND_TYPE_FREEZE_ACCOUNT"]
        await eventually(lambda: _stranded(after, OLD) == 0, what="the gauge back at 0")

        async def delivered_at_the_new_url_only() -> bool:
            states = {row.endpoint: row.state for row in await after.store.commands.deliveries(1)}
            return states == {receiver.url: "delivered"}

        # The receiver has it before the dispatcher records the answer.
        await eventually(delivered_at_the_new_url_only, what="the delivery recorded")
        attempts = await after.store.commands.attempts(1)
        assert {attempt.endpoint for attempt in attempts} == {OLD, receiver.url}  # the old ones stay on record
        again = await after.store.commands.move_pending(OLD, receiver.url, time.time(), "test:operator")
        assert (again.moved, again.kept, again.sending) == (0, 0, 0)  # nothing is sent twice
    finally:
        await after.stop(grace=1.0)
