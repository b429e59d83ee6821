"""Commands end to end with real processes: ``mtsg serve`` pushes to ``mtsg core-receiver``.

The gateway is killed with SIGKILL while commands are pending and in flight, then
restarted: every committed command must arrive, each applied exactly once, and
each customer's commands in order.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from gateway.client import MtsgClient
from gateway.generated.mtsg.v1 import common_pb2
from gateway.store import open_store
from tests.helpers import freezing_login
from tests.integration.conftest import (
    LoggedProcess,
    applied_commands,
    gateway_env,
    run_mtsg,
    serve_command,
    wait_applied,
)


def _start_gateway(tmp_path: Path, env: dict[str, str], name: str) -> tuple[LoggedProcess, str]:
    process = LoggedProcess(
        serve_command(str(tmp_path / "gw")),
        tmp_path / f"{name}.log",
        env,
        tmp_path,
    )
    return process, f"127.0.0.1:{process.wait_for_log('serving')['port']}"


async def test_sigkill_with_commands_pending_loses_nothing_and_applies_each_once(
    tmp_path: Path, keys: Path, receiver: tuple[LoggedProcess, str]
) -> None:
    _, receiver_url = receiver
    env = gateway_env(keys, f"{receiver_url}/commands")
    gateway, target = _start_gateway(tmp_path, env, "gateway-1")
    customers = [f"cust-{uuid.uuid4().hex[:6]}" for _ in range(5)]
    command_ids = set()
    async with MtsgClient(target) as client:
        for _ in range(4):
            for customer in customers:
                verdict = await client.check_login(freezing_login(customer))
                assert verdict.action == common_pb2.ACTION_FREEZE
                command_ids.add("cmd_" + verdict.verdict_id.removeprefix("v_"))
    gateway.wait_for_log("command delivery failed; will retry")
    # The receiver comes back, slowly: deliveries are in flight when the gateway dies.
    httpx.post(f"{receiver_url}/_control", json={"fail_status": 0, "delay_seconds": 0.2}, timeout=10)
    wait_applied(receiver_url, 2)
    gateway.process.send_signal(signal.SIGKILL)
    gateway.stop()
    assert len(applied_commands(receiver_url)) < 20, "everything was delivered before the kill; the test proves nothing"

    httpx.post(f"{receiver_url}/_control", json={"delay_seconds": 0.0}, timeout=10)
    restarted, _ = _start_gateway(tmp_path, env, "gateway-2")
    try:
        applied = wait_applied(receiver_url, 20)
        time.sleep(0.5)  # anything sent twice would show up now
        applied = applied_commands(receiver_url)
    finally:
        restarted.process.send_signal(signal.SIGTERM)
        restarted.stop()
    assert sorted(row["webhook_id"] for row in applied) == sorted(command_ids)
    for customer in customers:
        assert [row["sequence"] for row in applied if row["customer_id"] == customer] == [1, 2, 3, 4]
    assert not any(row["out_of_order"] for row in applied)


def _mtsg(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_mtsg(*arguments, environment=env)


async def test_operators_unfreeze_list_show_and_redeliver_from_the_command_line(
    tmp_path: Path, keys: Path, receiver: tuple[LoggedProcess, str]
) -> None:
    _, receiver_url = receiver
    httpx.post(f"{receiver_url}/_control", json={"fail_status": 0}, timeout=10)
    env = gateway_env(keys, f"{receiver_url}/commands")
    gateway, _ = _start_gateway(tmp_path, env, "gateway")
    data = ["--data-dir", str(tmp_path / "gw")]
    try:
        unfreeze = _mtsg(
            "commands",
            "unfreeze",
            "cust-7",
            "--reason",
            "verified by video call",
            "--scope",
            "transfers",
            *data,
            env=env,
        )
        assert unfreeze.returncode == 0, unfreeze.stderr
        command_id = unfreeze.stdout.split()[0]
        applied = wait_applied(receiver_url, 1)
        assert applied[0]["webhook_id"] == command_id
        assert applied[0]["command"]["freeze_scopes"] == ["FREEZE_SCOPE_TRANSFERS"]
        assert applied[0]["command"]["reasons"][0]["message"] == "verified by video call"

        deadline = time.monotonic() + 10
        while "delivered" not in (listing := _mtsg("commands", "list", *data, env=env)).stdout:
            assert time.monotonic() < deadline, listing.stdout + listing.stderr
            time.sleep(0.1)
        assert command_id in listing.stdout and "UNFREEZE_ACCOUNT" in listing.stdout
        shown = _mtsg("commands", "show", command_id, *data, env=env)
        assert "attempt 1" in shown.stdout and "-> 200 (delivered" in shown.stdout
        redelivered = _mtsg("commands", "redeliver", command_id, *data, env=env)
        assert redelivered.returncode == 0 and "1 endpoint" in redelivered.stdout
        # Sent again with the same webhook-id, and the receiver does not apply it a second time.
        deadline = time.monotonic() + 10
        while "attempt 2" not in (shown := _mtsg("commands", "show", command_id, *data, env=env)).stdout:
            assert time.monotonic() < deadline, shown.stdout
            time.sleep(0.1)
        assert len(applied_commands(receiver_url)) == 1
        status = _mtsg("commands", "status", *data, env=env)
        assert "1 delivered" in status.stdout
        audit = _mtsg("audit", "list", *data, env=env)
        assert "command.unfreeze_account cust-7" in audit.stdout and "command.redeliver" in audit.stdout
    finally:
        gateway.process.send_signal(signal.SIGTERM)
        gateway.stop()

    for arguments, message in [
        (("commands", "unfreeze", "cust 7", "--reason", "x"), "CUSTOMER must be"),
        (("commands", "unfreeze", "cust-7", "--reason", "  "), "argument --reason: must say why"),
        (("commands", "unfreeze", "cust-7", "--reason", "x", "--scope", "atm"), "unknown --scope"),
        (("commands", "show", "cmd_nope"), "no command cmd_nope"),
        (("commands", "redeliver", "cmd_nope"), "no command cmd_nope"),
        (("commands", "enable-endpoint", "http://x"), "is not disabled"),
    ]:
        result = _mtsg(*arguments, *data, env=env)
        assert result.returncode == 2 and message in result.stderr, (arguments, result.stderr)


async def test_an_unfreeze_made_without_the_gateways_push_settings_is_pushed_all_the_same(
    tmp_path: Path, keys: Path, receiver: tuple[LoggedProcess, str]
) -> None:
    _, receiver_url = receiver
    httpx.post(f"{receiver_url}/_control", json={"fail_status": 0}, timeout=10)
    data = ["--data-dir", str(tmp_path / "gw")]
    # Before any gateway has served, nothing would receive it: the operator is told so.
    assert _mtsg("migrate", *data).returncode == 0
    early = _mtsg("commands", "unfreeze", "cust-3", "--reason", "checked at the branch", *data)
    assert early.returncode == 0, early.stderr
    assert "warning: no gateway of this installation pushes commands to an endpoint" in early.stderr
    assert "stream only" in early.stdout

    gateway, _ = _start_gateway(tmp_path, gateway_env(keys, f"{receiver_url}/commands"), "gateway")
    try:
        # The security team's host has none of the gateway's MTSG_COMMANDS_* settings.
        plain = {name: value for name, value in os.environ.items() if not name.startswith("MTSG_")}
        unfreeze = _mtsg("commands", "unfreeze", "cust-4", "--reason", "verified by video call", *data, env=plain)
        assert unfreeze.returncode == 0, unfreeze.stderr
        assert "warning" not in unfreeze.stderr
        command_id = unfreeze.stdout.split()[0]
        assert f"{receiver_url}/commands" in unfreeze.stdout
        applied = wait_applied(receiver_url, 1)
        assert [row["webhook_id"] for row in applied] == [command_id]
    finally:
        gateway.process.send_signal(signal.SIGTERM)
        gateway.stop()


async def test_an_operator_moves_the_deliveries_of_an_endpoint_whose_url_changed(tmp_path: Path, keys: Path) -> None:
    old, new = "http://core-old.bank.internal/commands", "https://core.bank.internal/commands"
    data = ["--data-dir", str(tmp_path / "gw")]
    before, after = gateway_env(keys, old), gateway_env(keys, new)
    assert _mtsg("migrate", *data, env=before).returncode == 0
    unfreeze = _mtsg("commands", "unfreeze", "cust-9", "--reason", "verified in branch", *data, env=before)
    assert unfreeze.returncode == 0, unfreeze.stderr

    for arguments, message in [
        ((old, old), "OLD and NEW are the same endpoint"),
        ((old, "https://elsewhere/commands"), "is not in commands.endpoint_urls"),
        ((new, new), "OLD and NEW are the same endpoint"),
        (("http://never.used/commands", new), "no pending deliveries to http://never.used/commands"),
        (("", new), "must not be empty"),
    ]:
        refused = _mtsg("commands", "move-endpoint", *arguments, *data, env=after)
        assert refused.returncode == 2 and message in refused.stderr, (arguments, refused.stderr)

    store = await open_store("", tmp_path / "gw")
    try:  # a gateway still configured with the old URL is attempting the delivery right now
        assert len(await store.commands.claim_due([old], "old-replica", time.time(), 30, 10)) == 1
        held = _mtsg("commands", "move-endpoint", old, new, *data, env=after)
        assert held.returncode == 3, held.stderr
        assert "moved 0 pending deliveries" in held.stdout
        assert f"1 deliveries are being attempted at {old}" in held.stderr and "run this again after" in held.stderr
        assert await store.commands.release_leases("old-replica") == 1  # its attempt ended, the delivery pending
    finally:
        await store.close()
    moved = _mtsg("commands", "move-endpoint", old, new, "--actor", "ops:kim", *data, env=after)
    assert moved.returncode == 0, moved.stderr
    assert f"moved 1 pending deliveries from {old} to {new}" in moved.stdout
    status = _mtsg("commands", "status", *data, env=after).stdout
    assert old not in status
    assert f"{new}: 1 pending, 0 delivered, 0 dead" in status
    audit = _mtsg("audit", "list", *data, env=after).stdout
    assert "command.endpoint_move" in audit and "ops:kim" in audit
    again = _mtsg("commands", "move-endpoint", old, new, *data, env=after)
    assert again.returncode == 2 and "no pending deliveries" in again.stderr


async def test_an_operator_sees_stream_consumers_and_forgets_one_that_no_longer_reads(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "gw")]
    store = await open_store("", tmp_path / "gw")
    try:
        await store.commands.acknowledge("core-live", 0, time.time())
        await store.commands.acknowledge("smoke-test", 0, 1_700_000_000.0)
    finally:
        await store.close()

    listed = _mtsg("commands", "consumers", *data)
    assert listed.returncode == 0, listed.stderr
    assert "smoke-test: acknowledged cursor 0 (0 behind), last ack 2023-11-14T22:13:20" in listed.stdout
    for arguments, message in [
        (("nobody", "--reason", "typo"), "no consumer nobody"),
        (("smoke-test", "--reason", "  "), "argument --reason: must say why"),
        (("smoke-test",), "the following arguments are required: --reason"),
    ]:
        refused = _mtsg("commands", "forget-consumer", *arguments, *data)
        assert refused.returncode == 2 and message in refused.stderr, (arguments, refused.stderr)
    forgot = _mtsg("commands", "forget-consumer", "smoke-test", "--reason", "a test run's id", *data)
    assert forgot.returncode == 0 and "forgot smoke-test" in forgot.stdout
    listed = _mtsg("commands", "consumers", *data)
    assert "smoke-test" not in listed.stdout and "core-live" in listed.stdout
    assert "command.consumer_forget" in _mtsg("audit", "list", *data).stdout


def test_the_gateway_refuses_to_push_unsigned_or_with_a_bad_key(tmp_path: Path) -> None:
    unsigned = _mtsg("config", "show", env={**os.environ, "MTSG_COMMANDS_ENDPOINT_URLS": "http://127.0.0.1:9/commands"})
    assert unsigned.returncode == 2 and "no signing key" in unsigned.stderr
    (tmp_path / "bad.key").write_text("whsk_notbase64!!\n")
    bad = _mtsg(
        "serve",
        "--insecure",
        "--data-dir",
        str(tmp_path / "gw"),
        "--listen",
        "127.0.0.1:0",
        env={
            **os.environ,
            "MTSG_COMMANDS_ENDPOINT_URLS": "http://127.0.0.1:9/commands",
            "MTSG_COMMANDS_ED25519_KEY_FILE": str(tmp_path / "bad.key"),
        },
    )
    assert bad.returncode == 1 and "bad.key, key 1: " in bad.stderr


def test_the_receiver_needs_a_key_to_verify_with(tmp_path: Path) -> None:
    result = _mtsg("core-receiver", "--data-dir", str(tmp_path))
    assert result.returncode == 2 and "--hmac-secret-file" in result.stderr


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        (["--fail-status", "200"], "--fail-status must be 0 or an HTTP error status"),
        (["--delay-seconds", "-1"], "--delay-seconds must be between 0 and 60"),
        (["--fail-count", "-5"], "--fail-count must be -1 (all) or more"),
        # nan or inf let a request of any age through: replay protection off without a word.
        (["--tolerance-seconds", "nan"], "argument --tolerance-seconds: expected a number above 0, got 'nan'"),
        (["--tolerance-seconds", "inf"], "argument --tolerance-seconds: expected a number above 0, got 'inf'"),
        (["--tolerance-seconds", "-5"], "argument --tolerance-seconds: expected a number above 0"),
        (["--tolerance-seconds", "1e9"], "--tolerance-seconds: at most 86400"),
        (["--listen", "127.0.0.1:99999"], "--listen: expected HOST:PORT with a port up to 65535"),  # was a traceback
    ],
)
def test_the_receiver_refuses_flags_it_could_not_honour(
    tmp_path: Path, keys: Path, flags: list[str], problem: str
) -> None:
    result = _mtsg(
        "core-receiver", "--data-dir", str(tmp_path), "--hmac-secret-file", str(keys / "webhook-hmac.secret"), *flags
    )
    assert result.returncode == 2 and problem in result.stderr
