"""Verdict to core banking: the outbox and the signed push, against the real reference receiver over HTTP."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import structlog.testing
from prometheus_client import generate_latest

from gateway.client import MtsgClient
from gateway.commands.webhook_signing import WebhookSigner
from gateway.config import CommandsConfig, ConfigError
from gateway.core_receiver.receiver import Behaviour, CoreReceiver, Ledger
from gateway.generated.mtsg.v1 import common_pb2
from gateway.security.tls_client import ClientTLSError
from gateway.server.start import RunningGateway, start_gateway
from gateway.store.records import CommandQuery
from tests.certificates import TestAuthority
from tests.gateway.conftest import ReceiverKeyFiles, RunningReceiver, eventually, push_config
from tests.helpers import freezing_login, telemetry


async def _attempts(gateway: RunningGateway, command_id: str) -> list[str]:
    stored = await gateway.store.commands.get(command_id)
    assert stored is not None
    return [attempt.outcome for attempt in await gateway.store.commands.attempts(stored.cursor)]


async def test_a_freeze_verdict_reaches_core_banking_signed_and_complete(
    pushing_gateway: RunningGateway, receiver: RunningReceiver
) -> None:
    async with MtsgClient(pushing_gateway.target) as client:
        verdict = await client.check_login(freezing_login("cust-push-1"))
        allowed = await client.check_login(telemetry())
    assert verdict.action == common_pb2.ACTION_FREEZE and allowed.action == common_pb2.ACTION_ALLOW
    applied = await eventually(receiver.applied, what="delivery")
    assert len(applied) == 1
    command = applied[0]["command"]
    assert applied[0]["webhook_id"] == command["command_id"] == "cmd_" + verdict.verdict_id.removeprefix("v_")
    assert command["type"] == "COMMAND_TYPE_FREEZE_ACCOUNT"
    assert command["customer_id"] == "cust-push-1" and command["sequence"] == "1"
    assert command["verdict_id"] == verdict.verdict_id
    assert command["scenario_id"] == "remote-control-during-call"
    assert len(command["freeze_scopes"]) == 3
    assert {reason["code"] for reason in command["reasons"]} >= {"REMOTE_CONTROL_APP_ACTIVE", "ACTIVE_CALL"}
    assert await eventually(lambda: _settled_attempts(pushing_gateway, command["command_id"])) == ["delivered"]
    assert await pushing_gateway.store.count_rows("commands") == 1  # ALLOW wrote none
    await eventually(
        lambda: pushing_gateway.metrics.registry.get_sample_value(
            "mtsg_command_delivery_latency_seconds_count", {"endpoint": receiver.url}
        ),
        what="latency sample",
    )


async def test_step_up_sends_the_method_and_sequences_count_per_customer(
    pushing_gateway: RunningGateway, receiver: RunningReceiver
) -> None:
    async with MtsgClient(pushing_gateway.target) as client:
        await client.check_login(freezing_login("cust-seq"))
        await client.check_login(freezing_login("cust-seq"))
        await client.check_login(freezing_login("cust-other"))
    applied = await eventually(lambda: len(receiver.applied()) == 3 and receiver.applied(), what="three deliveries")
    by_customer = {(row["customer_id"], row["sequence"]) for row in applied}
    assert by_customer == {("cust-seq", 1), ("cust-seq", 2), ("cust-other", 1)}


async def test_failures_are_retried_until_the_receiver_answers(
    pushing_gateway: RunningGateway, receiver: RunningReceiver
) -> None:
    receiver.behave(fail_status=500, fail_count=2)
    async with MtsgClient(pushing_gateway.target) as client:
        await client.check_login(freezing_login())
    applied = await eventually(receiver.applied, what="delivery after retries")
    outcomes = await eventually(
        lambda: _settled_attempts(pushing_gateway, applied[0]["webhook_id"]), what="the outcome recorded"
    )
    assert outcomes == ["retry", "retry", "delivered"]
    retries = pushing_gateway.metrics.registry.get_sample_value(
        "mtsg_command_delivery_attempts_total", {"endpoint": receiver.url, "outcome": "retry"}
    )
    assert retries == 2


async def _settled_attempts(gateway: RunningGateway, command_id: str) -> list[str] | None:
    """The attempts once the last is recorded as delivered (the receiver may answer before the gateway records)."""
    outcomes = await _attempts(gateway, command_id)
    return outcomes if outcomes and outcomes[-1] == "delivered" else None


async def test_retry_after_on_429_is_honoured(pushing_gateway: RunningGateway, receiver: RunningReceiver) -> None:
    receiver.behave(fail_status=429, fail_count=1, retry_after=1)
    async with MtsgClient(pushing_gateway.target) as client:
        await client.check_login(freezing_login())
    applied = await eventually(receiver.applied, what="delivery after Retry-After")
    await eventually(lambda: _settled_attempts(pushing_gateway, applied[0]["webhook_id"]))
    stored = await pushing_gateway.store.commands.get(applied[0]["webhook_id"])
    assert stored is not None
    first, second = await pushing_gateway.store.commands.attempts(stored.cursor)
    assert first.status == 429 and second.status == 200
    # The policy alone would have retried after at most 0.05 s.
    assert second.at - first.at >= 1.0


async def test_the_last_failed_attempt_dead_letters_and_the_customers_next_command_still_goes(
    pushing_gateway: RunningGateway, receiver: RunningReceiver
) -> None:
    receiver.behave(fail_status=503, fail_count=4)
    async with MtsgClient(pushing_gateway.target) as client:
        verdict = await client.check_login(freezing_login("cust-dead"))
        command_id = "cmd_" + verdict.verdict_id.removeprefix("v_")
        await eventually(lambda: _attempts(pushing_gateway, command_id), what="first attempt")
        await eventually(lambda: _dead(pushing_gateway, command_id), what="dead letter")
        await client.check_login(freezing_login("cust-dead"))
    applied = await eventually(receiver.applied, what="the next command")
    assert [row["sequence"] for row in applied] == [2]
    assert await _attempts(pushing_gateway, command_id) == ["retry", "retry", "retry", "dead"]
    dead = pushing_gateway.metrics.registry.get_sample_value(
        "mtsg_command_dead_letters_total", {"endpoint": receiver.url}
    )
    assert dead == 1


async def _dead(gateway: RunningGateway, command_id: str) -> bool:
    stored = await gateway.store.commands.get(command_id)
    assert stored is not None
    return [delivery.state for delivery in await gateway.store.commands.deliveries(stored.cursor)] == ["dead"]


async def test_410_disables_the_endpoint_until_an_operator_enables_it(
    pushing_gateway: RunningGateway, receiver: RunningReceiver
) -> None:
    receiver.behave(fail_status=410, fail_count=1)
    async with MtsgClient(pushing_gateway.target) as client:
        await client.check_login(freezing_login())
        await eventually(pushing_gateway.store.commands.disabled_endpoints, what="endpoint disabled")
        await client.check_login(freezing_login())
    await asyncio.sleep(0.5)  # several polls of the dispatcher: none may send to the disabled endpoint
    assert receiver.applied() == []
    assert await pushing_gateway.store.commands.backlog() == {receiver.url: 2}
    assert await pushing_gateway.store.commands.enable_endpoint(receiver.url, time.time(), "test")
    applied = await eventually(lambda: len(receiver.applied()) == 2, what="both after enabling")
    assert applied


async def test_an_outage_delays_but_loses_nothing_and_keeps_each_customers_order(
    tmp_path: Path, key_files: ReceiverKeyFiles, receiver: RunningReceiver, store_url: str
) -> None:
    # Retries that outlast the outage: with the shared fixture's four quick attempts (~0.35 s), a
    # slow machine sending the twelve logins dead-lettered the first commands before it ended.
    config = push_config(tmp_path, key_files, receiver.url, store_url, max_attempts=100)
    pushing_gateway = await start_gateway(config)
    try:
        receiver.stop()
        customers = [f"cust-outage-{number}" for number in range(3)]
        async with MtsgClient(pushing_gateway.target) as client:
            for _ in range(4):
                for customer in customers:
                    await client.check_login(freezing_login(customer))
        await eventually(
            lambda: _any_attempt_failed(pushing_gateway), what="a delivery attempt against the stopped receiver"
        )
        receiver.start()
        applied = await eventually(lambda: len(receiver.applied()) == 12 and receiver.applied(), timeout=20)
    finally:
        await pushing_gateway.stop(grace=1.0)
    for customer in customers:
        assert [row["sequence"] for row in applied if row["customer_id"] == customer] == [1, 2, 3, 4]
    assert not any(row["out_of_order"] for row in applied)


class ShiftedClock:
    """The wall clock plus an offset the test moves: an hour passes in seconds."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def test_core_banking_down_for_an_hour_holds_the_backlog_and_drains_it_in_order(
    tmp_path: Path, key_files: ReceiverKeyFiles
) -> None:
    """With the shipped retry settings, an hour's outage dead-letters nothing; afterwards all goes, in order."""
    clock = ShiftedClock()
    receiver = RunningReceiver(tmp_path / "receiver" / "ledger.sqlite3", key_files.keys, clock)
    receiver.stop()
    shipped = CommandsConfig()
    config = push_config(
        tmp_path,
        key_files,
        receiver.url,
        backoff_initial_seconds=shipped.backoff_initial_seconds,
        backoff_max_seconds=shipped.backoff_max_seconds,
        max_attempts=shipped.max_attempts,
    )
    gateway = await start_gateway(config, clock=clock)
    customers = [f"cust-hour-{number}" for number in range(3)]
    try:
        async with MtsgClient(gateway.target) as client:
            for _ in range(3):
                for customer in customers:
                    await client.check_login(freezing_login(customer))
        for _ in range(65):  # a minute of the gateway's clock per step
            clock.offset += 60
            await asyncio.sleep(0.12)
        counts = await gateway.store.commands.counts()
        assert not any(state == "dead" for (_, state) in counts), counts
        attempts = await gateway.store.count_rows("command_attempts")
        assert attempts >= 3 * 8, f"only {attempts} attempts in an hour"  # each customer's first, retried
        assert receiver.applied() == []
        receiver.start()
        clock.offset += shipped.backoff_max_seconds  # the longest backoff has passed
        applied = await eventually(lambda: len(receiver.applied()) == 9 and receiver.applied(), timeout=30)
        for customer in customers:
            assert [row["sequence"] for row in applied if row["customer_id"] == customer] == [1, 2, 3]
        assert not any(row["out_of_order"] for row in applied)
    finally:
        await gateway.stop(grace=1.0)
        receiver.stop()
        receiver.ledger.close()


async def _any_attempt_failed(gateway: RunningGateway) -> bool:
    for overview in await gateway.store.commands.overview(CommandQuery()):
        if any(
            attempt.outcome == "retry" for attempt in await gateway.store.commands.attempts(overview.command.cursor)
        ):
            return True
    return False


async def test_the_receiver_refuses_forged_stale_and_malformed_requests_and_applies_a_replay_once(
    receiver: RunningReceiver, key_files: ReceiverKeyFiles
) -> None:
    body = b'{"type":"command.freeze_account","data":{"command_id":"cmd_x","customer_id":"c","sequence":"1"}}'
    signer = WebhookSigner(private_keys=(key_files.private_key,))
    now = int(time.time())
    stranger = WebhookSigner(hmac_secrets=(b"s" * 32,))
    async with httpx.AsyncClient() as http:
        forged = await http.post(receiver.url, content=body, headers=stranger.headers("cmd_x", now, body))
        stale = await http.post(receiver.url, content=body, headers=signer.headers("cmd_x", now - 301, body))
        other_id = await http.post(receiver.url, content=body, headers=signer.headers("cmd_y", now, body))
        first = await http.post(receiver.url, content=body, headers=signer.headers("cmd_x", now, body))
        replay = await http.post(receiver.url, content=body, headers=signer.headers("cmd_x", now, body))
    reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
    writer.write(b"POST /commands HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n")
    await writer.drain()
    too_large = await reader.readline()
    writer.close()
    assert (forged.status_code, stale.status_code, other_id.status_code) == (401, 401, 400)
    assert "no signature matches" in forged.json()["reason"] and "300s" in stale.json()["reason"]
    assert first.json()["status"] == "applied" and replay.json()["status"] == "duplicate"
    assert too_large.startswith(b"HTTP/1.1 413")
    assert [row["webhook_id"] for row in receiver.applied()] == ["cmd_x"]
    assert [row["status"] for row in receiver.refused()] == [401, 401, 400]


@pytest.mark.parametrize(
    "document",
    [
        b"[]",
        b"not json",
        b"",
        b'{"nope": 1}',
        b'{"fail_status": "x"}',
        b'{"fail_status": true}',
        b'{"fail_status": 200}',
        b'{"delay_seconds": -1}',
        b'{"delay_seconds": 1e9}',
        b'{"fail_count": -2}',
        b'{"retry_after": "soon"}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
async def test_bad_control_documents_are_refused_and_change_nothing(receiver: RunningReceiver, document: bytes) -> None:
    control = receiver.url.replace("/commands", "/_control")
    async with httpx.AsyncClient() as http:
        answer = await http.post(control, content=document)
        after = await http.post(control, content=b"{}")
    assert answer.status_code == 400 and "bad control document" in answer.json()["reason"]
    assert after.json()["behaviour"] == {"fail_status": 0, "fail_count": 0, "delay_seconds": 0.0, "retry_after": None}


async def test_a_control_document_changes_only_the_fields_it_names(receiver: RunningReceiver) -> None:
    control = receiver.url.replace("/commands", "/_control")
    async with httpx.AsyncClient() as http:
        await http.post(control, json={"fail_status": 503, "fail_count": -1, "retry_after": 2})
        answer = await http.post(control, json={"delay_seconds": 0.5})
        failing = await http.post(receiver.url, content=b"{}")
        await http.post(control, json={"fail_status": 0})
    assert answer.json()["behaviour"] == {"fail_status": 503, "fail_count": -1, "delay_seconds": 0.5, "retry_after": 2}
    assert failing.status_code == 503 and failing.headers["retry-after"] == "2"


@pytest.mark.parametrize(
    "body",
    [
        b"[1]",
        b'{"data": [1]}',
        b'{"data": {"command_id": "cmd_m", "customer_id": 7, "sequence": "1"}}',
        b'{"data": {"command_id": "cmd_m", "customer_id": "c", "sequence": "one"}}',
        b'{"data": {"command_id": "cmd_m", "customer_id": "c"}}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
async def test_a_signed_body_that_is_not_a_command_is_refused_not_dropped(
    receiver: RunningReceiver, key_files: ReceiverKeyFiles, body: bytes
) -> None:
    signer = WebhookSigner(private_keys=(key_files.private_key,))
    async with httpx.AsyncClient() as http:
        answer = await http.post(receiver.url, content=body, headers=signer.headers("cmd_m", int(time.time()), body))
    assert answer.status_code == 400 and answer.json()["reason"].startswith("not a command:")
    assert receiver.applied() == [] and [row["status"] for row in receiver.refused()] == [400]


async def test_logs_and_metrics_name_an_endpoint_without_its_credentials_or_token(
    tmp_path: Path, key_files: ReceiverKeyFiles, receiver: RunningReceiver, store_url: str
) -> None:
    secret_url = receiver.url.replace("http://", "http://core:pa55word@") + "?token=s3cret-token"
    receiver.behave(fail_status=503, fail_count=1)
    with structlog.testing.capture_logs() as logs:
        gateway = await start_gateway(push_config(tmp_path, key_files, secret_url, store_url))
        try:
            async with MtsgClient(gateway.target) as client:
                await client.check_login(freezing_login("cust-push-secret"))
            applied = await eventually(receiver.applied, what="delivery through the secret-bearing URL")
            assert await eventually(lambda: _settled_attempts(gateway, applied[0]["webhook_id"])) == [
                "retry",
                "delivered",
            ]
            await eventually(
                lambda: gateway.metrics.registry.get_sample_value(
                    "mtsg_command_delivery_latency_seconds_count", {"endpoint": receiver.url}
                ),
                what="latency sample under the shown name",
            )
            exposition = generate_latest(gateway.metrics.registry).decode()
        finally:
            await gateway.stop(grace=1.0)
    shown = [entry.get("endpoint") for entry in logs if "endpoint" in entry]
    assert shown.count(receiver.url) >= 2  # the retry and the delivery
    assert receiver.url in next(entry for entry in logs if entry["event"] == "serving")["command_endpoints"]
    everything = repr(logs) + exposition
    assert "pa55word" not in everything and "s3cret-token" not in everything
    assert (
        gateway.metrics.registry.get_sample_value(
            "mtsg_command_delivery_attempts_total", {"endpoint": receiver.url, "outcome": "retry"}
        )
        == 1
    )


class DrippingEndpoint:
    """Answers every POST with ``status`` and then a body that never ends, a byte every 50 ms:
    a stalled link, or a hostile endpoint, that never lets a single read time out."""

    def __init__(self, status: int) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self.send_response(status)
                self.send_header("content-length", str(10**9))
                self.end_headers()
                deadline = time.monotonic() + 30
                try:
                    while time.monotonic() < deadline and not endpoint.closing:
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(0.05)
                except OSError:  # the gateway gave up on this answer and closed the connection
                    pass
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.closing = False
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/commands"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.closing = True
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(("status", "outcome"), [(200, "delivered"), (500, "retry")])
async def test_an_endpoint_that_never_finishes_its_answer_is_cut_at_the_request_timeout(
    tmp_path: Path, key_files: ReceiverKeyFiles, store_url: str, status: int, outcome: str
) -> None:
    """The status decides the attempt; the endless body is read only so far, and never past the timeout."""
    endpoint = DrippingEndpoint(status)
    config = push_config(tmp_path, key_files, endpoint.url, store_url, request_timeout_seconds="1", max_attempts="2")
    gateway = await start_gateway(config)
    try:
        async with MtsgClient(gateway.target) as client:
            verdict = await client.check_login(freezing_login("cust-push-drip"))
        command_id = "cmd_" + verdict.verdict_id.removeprefix("v_")
        stored = await gateway.store.commands.get(command_id)
        assert stored is not None
        attempts = await eventually(
            lambda: gateway.store.commands.attempts(stored.cursor), timeout=5, what="the first attempt recorded"
        )
        first = attempts[0]
        assert (first.outcome, first.status) == (outcome, status)
        assert first.duration_ms < 1500
        assert first.error == (
            "" if status == 200 else "HTTP 500: " + "x" * len(first.error.removeprefix("HTTP 500: "))
        )
    finally:
        await gateway.stop(grace=1.0)
        endpoint.close()


def test_the_receiver_closes_a_connection_that_stops_mid_request(tmp_path: Path, key_files: ReceiverKeyFiles) -> None:
    """A sender that goes quiet halfway through its headers must not hold a receiver thread for good."""
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    server = CoreReceiver(("127.0.0.1", 0), ledger, key_files.keys, Behaviour(), idle_seconds=0.5)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5) as stalled:
            stalled.sendall(b"POST /commands HTTP/1.1\r\nhost: core\r\n")  # and never the rest
            started = time.monotonic()
            assert stalled.recv(1024) == b""  # closed by the receiver, not by our own 5 s timeout
            assert time.monotonic() - started < 3.0
    finally:
        server.shutdown()
        server.server_close()
        ledger.close()


class TLSEndpoint(RunningReceiver):
    """The reference receiver behind TLS on the bank's own PKI, asking the gateway for a client certificate."""

    def __init__(self, tmp_path: Path, key_files: ReceiverKeyFiles) -> None:
        self.authority = TestAuthority(tmp_path / "pki", name="bank internal CA")
        served = self.authority.server("core-banking")
        self.client = self.authority.issue("mtsg-gateway", client=True)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.authority.cert))
        context.load_cert_chain(served.cert, served.key)
        context.verify_mode = ssl.CERT_REQUIRED
        super().__init__(tmp_path / "tls-ledger.sqlite3", key_files.keys, tls=context)

    def close(self) -> None:
        self.stop()
        self.ledger.close()


@pytest.mark.parametrize("presented", ["ca and client certificate", "ca only", "neither"])
async def test_commands_reach_an_endpoint_on_the_banks_own_pki_only_with_its_ca_and_a_client_certificate(
    tmp_path: Path, key_files: ReceiverKeyFiles, store_url: str, presented: str
) -> None:
    endpoint = TLSEndpoint(tmp_path, key_files)
    tls: dict[str, str] = {}
    if presented != "neither":
        tls["ca_file"] = str(endpoint.authority.cert)
    if presented == "ca and client certificate":
        tls |= {"client_cert_file": str(endpoint.client.cert), "client_key_file": str(endpoint.client.key)}
    gateway = await start_gateway(push_config(tmp_path, key_files, endpoint.url, store_url, **tls))
    try:
        async with MtsgClient(gateway.target) as client:
            verdict = await client.check_login(freezing_login("cust-push-pki"))
        stored = await gateway.store.commands.get("cmd_" + verdict.verdict_id.removeprefix("v_"))
        assert stored is not None
        attempts = await eventually(lambda: gateway.store.commands.attempts(stored.cursor), what="an attempt")
        if presented == "ca and client certificate":
            await eventually(lambda: len(endpoint.applied()) == 1, what="the command over mTLS")
        else:  # the gateway does not trust the endpoint, or the endpoint does not admit the gateway
            assert (attempts[0].outcome, attempts[0].status) == ("retry", None)
            if presented == "neither":  # the gateway trusts the public CAs only
                assert "CERTIFICATE_VERIFY_FAILED" in attempts[0].error, attempts[0].error
            else:  # TLS 1.3: the endpoint refuses the missing client certificate after the handshake
                assert attempts[0].error.startswith(("ReadError: ", "ConnectError: ")), attempts[0].error
                assert not attempts[0].error.endswith(": ")  # something said after the name
            assert endpoint.applied() == []
    finally:
        await gateway.stop(grace=1.0)
        endpoint.close()


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"ca_file": "{tmp}/missing.pem"}, "commands.ca_file {tmp}/missing.pem: not a readable PEM CA bundle"),
        ({"ca_file": "{tmp}/garbage.pem"}, "commands.ca_file {tmp}/garbage.pem: not a readable PEM CA bundle"),
        (
            {"client_cert_file": "{tmp}/garbage.pem", "client_key_file": "{tmp}/garbage.pem"},
            "not a PEM certificate and its private key",
        ),
        ({"client_cert_file": "{tmp}/garbage.pem"}, "client_cert_file and commands.client_key_file go together"),
    ],
)
async def test_unusable_tls_files_for_the_push_stop_the_start_with_a_message_naming_them(
    tmp_path: Path, key_files: ReceiverKeyFiles, settings: dict[str, str], problem: str
) -> None:
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    named = {key: value.format(tmp=tmp_path) for key, value in settings.items()}
    with pytest.raises((ClientTLSError, ConfigError), match=re.escape(problem.format(tmp=tmp_path))):
        gateway = await start_gateway(push_config(tmp_path, key_files, "https://core.bank.internal/commands", **named))
        await gateway.stop(grace=1.0)
