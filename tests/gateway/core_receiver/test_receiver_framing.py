"""The reference receiver reads only bodies it can measure first, and keeps its test controls off unless asked.

Raw sockets, since a well-behaved HTTP client never sends what these tests need: a negative or
doubled Content-Length, a chunked body, a sender that leaves halfway through.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog.testing

from gateway.commands.webhook_signing import WebhookSigner
from tests.gateway.conftest import ReceiverKeyFiles, RunningReceiver

COMMAND = b'{"type":"command.freeze_account","data":{"command_id":"cmd_f","customer_id":"c","sequence":"1"}}'


def _exchange(port: int, request: bytes, close_write: bool = False) -> tuple[bytes, float]:
    """What the receiver sends back until it closes the connection, and how long that took."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        started = time.monotonic()
        connection.sendall(request)
        if close_write:
            connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
        return answer, time.monotonic() - started


def _signed_post(key_files: ReceiverKeyFiles, headers: bytes) -> bytes:
    signer = WebhookSigner(private_keys=(key_files.private_key,))
    signed = "".join(
        f"{name}: {value}\r\n" for name, value in signer.headers("cmd_f", int(time.time()), COMMAND).items()
    )
    return b"POST /commands HTTP/1.1\r\nHost: core\r\n" + signed.encode() + headers + b"\r\n"


@pytest.mark.parametrize(
    ("framing", "status", "reason"),
    [
        # rfile.read(-1) reads until the sender closes: before, no answer came, and memory had no bound.
        (b"Content-Length: -1\r\n", b"400", b"not a decimal number"),
        (b"Content-Length: abc\r\n", b"400", b"not a decimal number"),
        (b"Content-Length: +97\r\n", b"400", b"not a decimal number"),
        (b"Content-Length: 97\r\nContent-Length: 5\r\n", b"400", b"conflicting Content-Length"),
        (b"Transfer-Encoding: chunked\r\n", b"411", b"Transfer-Encoding is not accepted"),
        (b"Content-Length: 1048577\r\n", b"413", b"body over 1048576 bytes"),
    ],
)
def test_a_body_the_receiver_cannot_measure_is_refused_at_once_and_ends_the_connection(
    receiver: RunningReceiver, key_files: ReceiverKeyFiles, framing: bytes, status: bytes, reason: bytes
) -> None:
    body = b"61\r\n" + COMMAND + b"\r\n0\r\n\r\n" if b"chunked" in framing else COMMAND
    # The sender keeps its side open: the answer must come without waiting for its EOF.
    answer, elapsed = _exchange(receiver.port, _signed_post(key_files, framing) + body)
    assert answer.startswith(b"HTTP/1.1 " + status) and reason in answer
    assert answer.count(b"HTTP/1.1") == 1  # the bytes after the headers were not taken as another request
    assert elapsed < 5.0
    assert receiver.applied() == []


def test_the_same_command_with_a_true_length_is_applied(receiver: RunningReceiver, key_files: ReceiverKeyFiles) -> None:
    """The control case for the refusals above: only the framing differed."""
    framing = f"Content-Length: {len(COMMAND)}\r\nConnection: close\r\n".encode()
    answer, _ = _exchange(receiver.port, _signed_post(key_files, framing) + COMMAND)
    assert answer.startswith(b"HTTP/1.1 200") and b'"applied"' in answer
    assert [row["webhook_id"] for row in receiver.applied()] == ["cmd_f"]


def test_a_sender_gone_mid_body_is_logged_and_neither_applied_nor_refused(
    receiver: RunningReceiver, key_files: ReceiverKeyFiles
) -> None:
    framing = f"Content-Length: {len(COMMAND)}\r\n".encode()
    with structlog.testing.capture_logs() as logs:
        answer, _ = _exchange(receiver.port, _signed_post(key_files, framing) + COMMAND[:40], close_write=True)
    assert answer == b""
    assert receiver.applied() == [] and receiver.refused() == []
    assert [entry["outcome"] for entry in logs if entry["event"] == "request"] == ["sender gone mid-body"]


@pytest.fixture
def production_receiver(tmp_path: Path, key_files: ReceiverKeyFiles) -> Iterator[RunningReceiver]:
    running = RunningReceiver(tmp_path / "ledger.sqlite3", key_files.keys, test_controls=False)
    yield running
    running.stop()
    running.ledger.close()


def test_without_test_controls_nobody_can_read_the_ledger_or_make_the_receiver_fail(
    production_receiver: RunningReceiver, key_files: ReceiverKeyFiles
) -> None:
    base = production_receiver.url.removesuffix("/commands")
    signer = WebhookSigner(private_keys=(key_files.private_key,))
    with httpx.Client() as http:
        control = http.post(f"{base}/_control", json={"fail_status": 503, "fail_count": -1})
        command = http.post(
            production_receiver.url, content=COMMAND, headers=signer.headers("cmd_f", int(time.time()), COMMAND)
        )
        ledger = http.get(f"{base}/_applied")
        health = http.get(f"{base}/_health")
    assert control.status_code == 404 and "--test-controls" in control.json()["reason"]
    assert command.status_code == 200 and command.json()["status"] == "applied"
    assert ledger.status_code == 404 and b"cmd_f" not in ledger.content
    assert health.status_code == 200
