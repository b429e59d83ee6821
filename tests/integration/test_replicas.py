"""Three ``mtsg serve`` replicas on one PostgreSQL database behave as one gateway.

Real processes, a real PostgreSQL database of the test's own and the real
reference receiver: logins go through all three replicas; a blocklist entry and
a policy added through one are live in the others within a second (their polling
is slowed to 30 s, so only NOTIFY can bring them that fast); one replica is
SIGKILLed while commands are pending, and the receiver still applies every
command once, each customer's in order.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

from gateway.client import MtsgClient
from gateway.generated.mtsg.v1 import common_pb2, policy_service_pb2
from gateway.policy.knowledge import shipped_policy_document
from tests.helpers import app, freezing_login, package_entry_request, telemetry
from tests.integration.conftest import LoggedProcess, applied_commands, gateway_env, serve_command, wait_applied

MALWARE_PACKAGE = "com.replica.fake.bank"
SLOW_POLL = "30"


def _start_replica(tmp_path: Path, env: dict[str, str], name: str) -> tuple[LoggedProcess, str]:
    process = LoggedProcess(
        serve_command(str(tmp_path / name)),
        tmp_path / f"{name}.log",
        env,
        tmp_path,
    )
    return process, f"127.0.0.1:{process.wait_for_log('serving')['port']}"


def _duplicates(receiver_url: str) -> list[dict[str, object]]:
    return list(httpx.get(f"{receiver_url}/_applied", timeout=10).json()["duplicates"])


async def _seconds_until_blocked(target: str, started: float, timeout: float = 5.0) -> float:
    """How long after ``started`` a login on ``target`` first reports the new blocklist entry."""
    async with MtsgClient(target) as client:
        while time.monotonic() - started < timeout:
            # A new login each time (its own device and nonce): a resend would be refused as a replay,
            # and one device polling this fast would meet its rate limit.
            verdict = await client.check_login(telemetry(installed_apps=[app(MALWARE_PACKAGE, label="Fake Bank")]))
            if any(reason.code.startswith("MALICIOUS_APP") for reason in verdict.reasons):
                return time.monotonic() - started
            await asyncio.sleep(0.02)
    raise AssertionError(f"the entry was not live on {target} within {timeout}s")


async def test_three_replicas_share_blocklist_policy_and_outbox(
    tmp_path: Path, keys: Path, receiver: tuple[LoggedProcess, str], postgres_url: str
) -> None:
    _, receiver_url = receiver
    # Core banking is slow: commands are still pending and in flight when a replica dies.  Each
    # customer's commands go one at a time, so 0.5 s each keeps them coming for seconds, longer than
    # the steps before the kill take on a slow machine (0.15 s once let all arrive before it).
    httpx.post(f"{receiver_url}/_control", json={"fail_status": 0, "delay_seconds": 0.5}, timeout=10)
    env = {
        **gateway_env(keys, f"{receiver_url}/commands"),
        "MTSG_STORE_URL": postgres_url,
        "MTSG_PRIVACY_PHONE_HASH_KEY_FILE": str(tmp_path / "phone-hash.key"),
        "MTSG_BLOCKLIST_REFRESH_INTERVAL_SECONDS": SLOW_POLL,
        "MTSG_SIGNALS_POLICY_REFRESH_INTERVAL_SECONDS": SLOW_POLL,
        "MTSG_COMMANDS_POLL_INTERVAL_SECONDS": SLOW_POLL,
    }
    replicas = [_start_replica(tmp_path, env, f"replica-{n}") for n in range(3)]
    targets = [target for _, target in replicas]
    try:
        # Logins through all three at once: 6 customers x 4 FREEZE logins, round robin.
        customers = [f"cust-{uuid.uuid4().hex[:6]}" for _ in range(6)]
        command_ids: set[str] = set()
        clients = [MtsgClient(target) for target in targets]
        for client in clients:
            await client.__aenter__()
        try:
            for round_number in range(4):
                verdicts = await asyncio.gather(
                    *(
                        clients[(index + round_number) % 3].check_login(freezing_login(customer))
                        for index, customer in enumerate(customers)
                    )
                )
                for verdict in verdicts:
                    assert verdict.action == common_pb2.ACTION_FREEZE
                    command_ids.add("cmd_" + verdict.verdict_id.removeprefix("v_"))

            # The same retried login through two replicas at once: one verdict, one command.
            retried = freezing_login(customers[0])
            key = uuid.uuid4().hex
            first, second = await asyncio.gather(
                clients[1].check_login(retried, request_id=key), clients[2].check_login(retried, request_id=key)
            )
            assert first.verdict_id == second.verdict_id
            command_ids.add("cmd_" + first.verdict_id.removeprefix("v_"))

            # One customer on one device through all three at once: device history counts every login.
            shared_customer, shared_device = f"cust-{uuid.uuid4().hex[:6]}", f"dev-{uuid.uuid4().hex[:6]}"
            await asyncio.gather(
                *(
                    clients[n % 3].check_login(telemetry(customer_id=shared_customer, device_id=shared_device))
                    for n in range(9)
                )
            )

            # A blocklist entry added through replica 0 is live in 1 and 2 within a second.
            started = time.monotonic()
            await clients[0].blocklist.AddEntry(package_entry_request(MALWARE_PACKAGE, "ReplicaFake"), timeout=10)
            delays = await asyncio.gather(*(_seconds_until_blocked(target, started) for target in targets[1:]))
            assert max(delays) < 1.0, delays

            # A policy applied through replica 2 is in force in 0 and 1 within a second.
            document = shipped_policy_document().replace("Freeze on", "Replicas: freeze on", 1)
            applied = await clients[2].policy.ApplyPolicy(
                policy_service_pb2.ApplyPolicyRequest(document=document, comment="replica test"), timeout=10
            )
            started = time.monotonic()
            for client in clients[:2]:
                while (
                    await client.policy.GetPolicy(policy_service_pb2.GetPolicyRequest(), timeout=10)
                ).policy.version != applied.policy.version:
                    assert time.monotonic() - started < 1.0, "policy not live in every replica within a second"
                    await asyncio.sleep(0.02)
        finally:
            for client in clients:
                await client.__aexit__(None, None, None)

        # Kill a replica while commands are pending and in flight.
        wait_applied(receiver_url, 3)
        victim, _ = replicas[1]
        victim.process.send_signal(signal.SIGKILL)
        victim.stop()
        # What the dead replica held (its dispatcher's owner is host:pid:random), before the leases expire.
        connection = await asyncpg.connect(postgres_url)
        try:
            held_by_victim = {
                row[0]
                for row in await connection.fetch(
                    "SELECT c.command_id FROM command_deliveries d JOIN commands c ON c.cursor = d.cursor"
                    " WHERE d.state = 'pending' AND d.lease_owner LIKE $1",
                    f"%:{victim.process.pid}:%",
                )
            }
        finally:
            await connection.close()
        delivered_before_kill = {row["webhook_id"] for row in applied_commands(receiver_url)}
        assert not command_ids <= delivered_before_kill, "all delivered before the kill; proves nothing"
        httpx.post(f"{receiver_url}/_control", json={"delay_seconds": 0.0}, timeout=10)

        # Every command committed (the logins above, and the FREEZEs the blocklist checks caused) arrives once.
        connection = await asyncpg.connect(postgres_url)
        try:
            committed = {row[0] for row in await connection.fetch("SELECT command_id FROM commands")}
            devices = await connection.fetch(
                "SELECT login_count FROM customer_devices WHERE customer_id = $1", shared_customer
            )
        finally:
            await connection.close()
        assert [row[0] for row in devices] == [9]
        assert command_ids <= committed
        applied_rows = wait_applied(receiver_url, len(committed), timeout=90)
        time.sleep(0.5)  # anything sent twice would show up now
        applied_rows = applied_commands(receiver_url)
        assert sorted(row["webhook_id"] for row in applied_rows) == sorted(committed)
        for customer in customers:
            sequences = [row["sequence"] for row in applied_rows if row["customer_id"] == customer]
            assert sequences == list(range(1, len(sequences) + 1)), (customer, sequences)
        assert not any(row["out_of_order"] for row in applied_rows)
        # Only deliveries the dead replica had in flight may arrive twice (the receiver applies them once);
        # between live replicas nothing is sent twice.
        duplicated = {row["webhook_id"] for row in _duplicates(receiver_url)}
        assert duplicated <= held_by_victim, (duplicated, held_by_victim)
    finally:
        for process, _ in replicas:
            if process.process.poll() is None:
                process.process.send_signal(signal.SIGTERM)
            process.stop()
