"""PostgreSQL goes away under a running gateway: logins get the fail mode in time, and it heals by itself.

The network between the gateway and the real PostgreSQL server is a proxy the test
breaks: first every connection is reset and new ones refused (the host is down), then
connections hang without an answer (a black-holed network).  Meanwhile each login must be
answered within its budget; afterwards the gateway must serve real verdicts again without a
restart, and every command committed before, during and after is in the database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc
import pytest
import structlog.testing

from gateway.client import MtsgClient
from gateway.generated.mtsg.v1 import (
    blocklist_service_pb2,
    blocklist_service_pb2_grpc,
    common_pb2,
    policy_service_pb2,
    policy_service_pb2_grpc,
    telemetry_pb2,
    threat_signal_service_pb2,
)
from gateway.server.start import RunningGateway, start_gateway
from tests.gateway.conftest import ReceiverKeyFiles, RunningReceiver, eventually, push_config
from tests.helpers import freezing_login, gateway_config, telemetry
from tests.postgres import PostgresDatabases
from tests.tcp_proxy import FaultyProxy

STORE_TIMEOUT = 1.0
STATEMENT_TIMEOUT = 2.0


@pytest.fixture
async def database(postgres: PostgresDatabases) -> AsyncIterator[str]:
    url = await postgres.create()
    yield url
    await postgres.drop(url)


@pytest.fixture
async def gateway(tmp_path: Path, database: str, proxy: FaultyProxy) -> AsyncIterator[RunningGateway]:
    through_proxy = proxy.in_front_of(database)
    config = gateway_config(
        tmp_path, through_proxy, login__store_timeout_seconds=str(STORE_TIMEOUT), store__pool_size="3"
    )
    running = await start_gateway(config)
    yield running
    await running.stop(grace=1.0)


async def _timed_login(
    client: MtsgClient, message: telemetry_pb2.LoginTelemetry
) -> tuple[threat_signal_service_pb2.CheckLoginResponse, float]:
    started = time.monotonic()
    answer = await client.check_login(message)
    return answer, time.monotonic() - started


def _is_fail_mode(answer: threat_signal_service_pb2.CheckLoginResponse) -> bool:
    return any(reason.code == "STORE_UNAVAILABLE" for reason in answer.reasons)


async def _count(database: str, table: str) -> int:
    connection = await asyncpg.connect(database)  # straight to the server, not through the proxy
    try:
        return int(await connection.fetchval(f"SELECT COUNT(*) FROM {table}"))
    finally:
        await connection.close()


async def test_logins_are_answered_in_time_while_postgresql_is_gone_and_it_heals(
    gateway: RunningGateway, proxy: FaultyProxy, database: str
) -> None:
    async with MtsgClient(gateway.target, timeout=10) as client:
        before, _ = await _timed_login(client, freezing_login())
        assert before.action == common_pb2.ACTION_FREEZE

        for outage in (proxy.cut, proxy.stall):
            outage()
            for message in (telemetry(), freezing_login()):
                answer, seconds = await _timed_login(client, message)
                assert _is_fail_mode(answer), f"{outage.__name__}: {answer}"
                assert answer.action == common_pb2.ACTION_STEP_UP
                assert seconds < STORE_TIMEOUT + 1.0, f"{outage.__name__}: answered after {seconds:.2f} s"
            proxy.restore()
            proxy.cut()  # the stalled connections are dead to the pool: reset them, as a real network would
            proxy.restore()

        # Back without a restart: the pool opens new connections on its own.
        deadline = time.monotonic() + 30
        after = None
        while time.monotonic() < deadline:
            after, _ = await _timed_login(client, freezing_login())
            if not _is_fail_mode(after):
                break
            await asyncio.sleep(0.2)
        assert after is not None and after.action == common_pb2.ACTION_FREEZE, after

    # Exactly the two real FREEZE verdicts made commands; fail-mode answers stored nothing.
    assert await _count(database, "commands") == 2
    assert await _count(database, "verdicts") == 2


async def test_admin_reads_while_postgresql_is_gone_are_unavailable_to_retry_not_internal_errors(
    gateway: RunningGateway, proxy: FaultyProxy
) -> None:
    """Reads of the registry and the policy had no answer for a store that is down: the outage came
    back as INTERNAL, which clients do not retry, logged as an "unexpected error" with its traceback."""
    proxy.cut()
    async with grpc.aio.insecure_channel(gateway.target) as channel:
        registry = blocklist_service_pb2_grpc.BlocklistServiceStub(channel)
        policy = policy_service_pb2_grpc.PolicyServiceStub(channel)
        calls = {
            "GetEntry": registry.GetEntry(blocklist_service_pb2.GetEntryRequest(entry_id="bl_1")),
            "ListEntries": registry.ListEntries(blocklist_service_pb2.ListEntriesRequest()),
            "ExportBundle": registry.ExportBundle(blocklist_service_pb2.ExportBundleRequest()),
            "GetStatus": registry.GetStatus(blocklist_service_pb2.GetStatusRequest()),
            "GetPolicy": policy.GetPolicy(policy_service_pb2.GetPolicyRequest()),
            "ListPolicyVersions": policy.ListPolicyVersions(policy_service_pb2.ListPolicyVersionsRequest()),
        }
        with structlog.testing.capture_logs() as logs:
            for name, call in calls.items():
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await call
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, (name, refused.value.details())
                assert "store is unavailable" in (refused.value.details() or ""), name
    assert not [line for line in logs if line["event"] == "unexpected error"]


async def test_after_a_failover_strands_every_open_connection_the_gateway_recovers_on_new_ones(
    tmp_path: Path,
    database: str,
    proxy: FaultyProxy,
    key_files: ReceiverKeyFiles,
    receiver: RunningReceiver,
) -> None:
    """The old connections hear nothing, ever (no answer, no reset); new ones reach the database.

    Logins and the push of commands must each come back on their own, within a few statement
    timeouts, not after the minutes a kernel takes to give up on a silent connection.
    """
    through_proxy = proxy.in_front_of(database)
    config = push_config(tmp_path, key_files, receiver.url, through_proxy)
    config = dataclasses.replace(
        config,
        store=dataclasses.replace(config.store, pool_size=3, statement_timeout_seconds=STATEMENT_TIMEOUT),
        login=dataclasses.replace(config.login, store_timeout_seconds=STORE_TIMEOUT),
    )
    gateway = await start_gateway(config)
    try:
        async with MtsgClient(gateway.target, timeout=10) as client:
            assert (await client.check_login(freezing_login("cust-strand-1"))).action == common_pb2.ACTION_FREEZE
            await eventually(lambda: len(receiver.applied()) == 1, what="the first command pushed")
            proxy.strand()
            started = time.monotonic()
            answer = None
            while time.monotonic() - started < 30:
                answer = await client.check_login(freezing_login("cust-strand-2"))
                if not _is_fail_mode(answer):
                    break
                await asyncio.sleep(0.2)
            assert answer is not None and answer.action == common_pb2.ACTION_FREEZE, answer
            assert time.monotonic() - started < 5 * STATEMENT_TIMEOUT  # seen: 1.2 s
            await eventually(lambda: len(receiver.applied()) == 2, timeout=30, what="the command after the failover")
            assert time.monotonic() - started < 5 * STATEMENT_TIMEOUT  # seen: 1.3 to 4.1 s
    finally:
        await gateway.stop(grace=1.0)


async def test_a_delivery_whose_outcome_cannot_be_recorded_is_sent_again_after_its_lease(
    tmp_path: Path,
    database: str,
    proxy: FaultyProxy,
    key_files: ReceiverKeyFiles,
    receiver: RunningReceiver,
) -> None:
    """The database goes while core banking is answering: the outcome is lost, the command is not."""
    through_proxy = proxy.in_front_of(database)
    gateway = await start_gateway(push_config(tmp_path, key_files, receiver.url, through_proxy))
    receiver.behave(delay_seconds=2.0)  # core banking takes 2 s to apply and answer
    try:
        with structlog.testing.capture_logs() as logs:
            async with MtsgClient(gateway.target, timeout=10) as client:
                verdict = await client.check_login(freezing_login("cust-unrecorded"))
            await asyncio.sleep(0.5)  # the push is out (it leaves within milliseconds) and not yet answered
            assert receiver.applied() == []
            proxy.cut()
            await eventually(lambda: len(receiver.applied()) == 1, what="core banking applying the push")
            await asyncio.sleep(0.5)  # its answer arrives, and the outcome finds no database
            proxy.restore()
            receiver.behave()
            command_id = "cmd_" + verdict.verdict_id.removeprefix("v_")
            stored = await gateway.store.commands.get(command_id)
            assert stored is not None
            outcomes = await eventually(
                lambda: _delivered(gateway, stored.cursor), timeout=20, what="the resend after the lease"
            )
        lost = [entry for entry in logs if "is not recorded" in entry["event"]]
        assert [entry["command_id"] for entry in lost] == [command_id]
        assert not [entry for entry in logs if entry["event"] == "delivery failed unexpectedly"]
        assert outcomes[-1] == "delivered"
        assert [entry["webhook_id"] for entry in receiver.applied()] == [command_id]  # applied once
    finally:
        await gateway.stop(grace=1.0)


async def _delivered(gateway: RunningGateway, cursor: int) -> list[str] | None:
    outcomes = [str(attempt.outcome) for attempt in await gateway.store.commands.attempts(cursor)]
    return outcomes if outcomes and outcomes[-1] == "delivered" else None
