"""A real reference receiver on a free port, and a gateway that pushes commands to it."""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway.client import MtsgClient
from gateway.commands.webhook_signing import (
    generate_hmac_secret,
    generate_key_pair,
    parse_hmac_secret,
    parse_private_key,
    parse_public_key,
)
from gateway.core_receiver.receiver import Behaviour, CoreReceiver, Ledger, ReceiverKeys
from gateway.generated.mtsg.v1 import command_feed_service_pb2
from gateway.server.start import RunningGateway, start_gateway
from tests.helpers import gateway_config


@dataclass
class ReceiverKeyFiles:
    hmac_secret_file: Path
    ed25519_key_file: Path
    keys: ReceiverKeys
    private_key: Any


class RunningReceiver:
    """The reference receiver served from a thread; ``stop`` and ``start`` simulate an outage on one port.

    With ``tls``, it serves HTTPS on ``localhost`` (the name its test certificates carry).
    """

    def __init__(
        self,
        ledger_path: Path,
        keys: ReceiverKeys,
        clock: Callable[[], float] = time.time,
        tls: ssl.SSLContext | None = None,
        test_controls: bool = True,
    ) -> None:
        self.ledger = Ledger(ledger_path)
        self.test_controls = test_controls
        self.keys = keys
        self.clock = clock
        self.tls = tls
        self.port = 0
        self._server: CoreReceiver | None = None
        self._thread: threading.Thread | None = None
        self.start()

    @property
    def url(self) -> str:
        if self.tls is not None:
            return f"https://localhost:{self.port}/commands"
        return f"http://127.0.0.1:{self.port}/commands"

    def start(self) -> None:
        address = ("127.0.0.1", self.port)
        behaviour = Behaviour()
        self._server = CoreReceiver(
            address, self.ledger, self.keys, behaviour, clock=self.clock, test_controls=self.test_controls
        )
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def behave(self, **changes: Any) -> None:
        assert self._server is not None
        with self._server.behaviour_lock:
            self._server.behaviour = Behaviour(**changes)

    def applied(self) -> list[dict[str, Any]]:
        return self.ledger.snapshot()["applied"]

    def refused(self) -> list[dict[str, Any]]:
        return self.ledger.snapshot()["refused"]


@pytest.fixture
def key_files(tmp_path: Path) -> ReceiverKeyFiles:
    secret = generate_hmac_secret()
    private, public = generate_key_pair()
    (tmp_path / "hmac.secret").write_text(secret + "\n")
    (tmp_path / "ed25519.key").write_text(private + "\n")
    keys = ReceiverKeys((parse_hmac_secret(secret),), (parse_public_key(public),))
    return ReceiverKeyFiles(tmp_path / "hmac.secret", tmp_path / "ed25519.key", keys, parse_private_key(private))


@pytest.fixture
def receiver(tmp_path: Path, key_files: ReceiverKeyFiles) -> Iterator[RunningReceiver]:
    running = RunningReceiver(tmp_path / "receiver" / "ledger.sqlite3", key_files.keys)
    yield running
    running.stop()
    running.ledger.close()


def push_config(
    tmp_path: Path, key_files: ReceiverKeyFiles, endpoint: str, store_url: str = "", **commands: Any
) -> Any:
    settings = {
        "endpoint_urls": endpoint,
        "hmac_secret_file": str(key_files.hmac_secret_file),
        "ed25519_key_file": str(key_files.ed25519_key_file),
        # Fast retries so a test sees several attempts in well under a second.
        "backoff_initial_seconds": "0.05",
        "backoff_max_seconds": "0.2",
        "max_attempts": "4",
        "request_timeout_seconds": "2",
        "lease_seconds": "3",
        "poll_interval_seconds": "0.1",
        **{name: str(value) for name, value in commands.items()},
    }
    return gateway_config(
        tmp_path, store_url, metrics=False, **{f"commands__{name}": value for name, value in settings.items()}
    )


@pytest.fixture
async def pushing_gateway(
    tmp_path: Path, key_files: ReceiverKeyFiles, receiver: RunningReceiver, store_url: str
) -> AsyncIterator[RunningGateway]:
    running = await start_gateway(push_config(tmp_path, key_files, receiver.url, store_url))
    yield running
    await running.stop(grace=1.0)


async def eventually(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.02)


async def take_commands(client: MtsgClient, count: int, consumer_id: str = "core", after: int = 0) -> list:  # type: ignore[type-arg]
    """The first ``count`` commands of a fresh subscription; the stream is closed after."""
    call = client.commands.Subscribe(
        command_feed_service_pb2.SubscribeRequest(consumer_id=consumer_id, after_cursor=after)
    )
    received = []
    try:
        async with asyncio.timeout(10):
            async for response in call:
                received.append(response.command)
                if len(received) == count:
                    break
    finally:
        call.cancel()
    return received


async def take_or_refused(client: MtsgClient, consumer_id: str) -> list | None:  # type: ignore[type-arg]
    """The first command of a new stream, or None while every stream place is held."""
    try:
        return await take_commands(client, 1, consumer_id=consumer_id)
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
            raise
        return None
