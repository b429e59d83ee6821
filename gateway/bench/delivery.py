"""Verdict-to-delivery figures: how long a FREEZE takes from the verdict to core banking's receiver.

Real processes: ``mtsg serve`` pushes to ``mtsg core-receiver``, which stamps the
arrival of each command; the latency of a command is arrival minus the verdict's
time (one machine, one clock).  Logins are sent at a steady rate, not as fast as
possible: the target (p99 under 100 ms) is about a healthy gateway, not a saturated
one.  Beside it, the baseline: the same signed POSTs sent straight to the receiver
by this process, which is the floor the outbox adds its cost to.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.bench.processes import start_gateway, start_receiver
from gateway.bench.report import percentile, progress
from gateway.client import MtsgClient
from gateway.commands.webhook_signing import WebhookSigner, generate_hmac_secret, parse_hmac_secret
from gateway.generated.mtsg.v1 import telemetry_pb2

TARGET_P99_MS = 100.0


@dataclass(frozen=True)
class DeliveryFigures:
    commands: int
    rate_per_second: float
    delivered: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    direct_p50_ms: float
    direct_p99_ms: float


def _freezing_login() -> telemetry_pb2.LoginTelemetry:
    login = telemetry_pb2.LoginTelemetry(
        customer_id=f"bench-{uuid.uuid4().hex[:10]}",
        device_id=f"dev-{uuid.uuid4().hex[:10]}",
        nonce=uuid.uuid4().hex,
        installed_apps=[
            telemetry_pb2.InstalledApp(package_name="com.anydesk.anydeskandroid", label="AnyDesk", running=True)
        ],
        call=telemetry_pb2.CallState(active_call=True),
    )
    login.collected_at.FromNanoseconds(time.time_ns())
    return login


async def _send_logins(target: str, count: int, rate: float) -> None:
    async with MtsgClient(target, timeout=30) as client:
        start = time.monotonic()
        for index in range(count):
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await client.check_login(_freezing_login())
            if (index + 1) % max(1, count // 4) == 0:
                progress(f"delivery: {index + 1}/{count} FREEZE verdicts sent")


def _wait_for(receiver_url: str, count: int, timeout: float) -> list[dict]:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while True:
        applied = list(httpx.get(f"{receiver_url}/_applied", timeout=30).json()["applied"])
        if len(applied) >= count or time.monotonic() > deadline:
            return applied
        time.sleep(0.2)


def _latencies_ms(applied: list[dict]) -> list[float]:  # type: ignore[type-arg]
    latencies = []
    for row in applied:
        created = Timestamp()
        created.FromJsonString(row["command"]["created_at"])
        latencies.append((row["received_at"] - created.ToNanoseconds() / 1e9) * 1000)
    return latencies


def _direct_ms(receiver_url: str, secret: bytes, count: int) -> list[float]:
    """Signed POSTs from here straight to the receiver: network, signature check and ledger, no outbox."""
    signer = WebhookSigner(hmac_secrets=(secret,))
    durations = []
    with httpx.Client(timeout=30) as http:
        for index in range(count):
            webhook_id = f"cmd_direct_{index}_{uuid.uuid4().hex[:8]}"
            command = {"command_id": webhook_id, "customer_id": "direct", "sequence": str(index + 1)}
            body = json.dumps({"type": "command.freeze_account", "data": command}).encode()
            started = time.perf_counter()
            http.post(
                f"{receiver_url}/commands", content=body, headers=signer.headers(webhook_id, int(time.time()), body)
            )
            durations.append((time.perf_counter() - started) * 1000)
    return durations


def measure_delivery(data_dir: Path, count: int, rate: float) -> DeliveryFigures:
    keys = data_dir / "webhook-keys"
    keys.mkdir(parents=True, exist_ok=True)
    secret_text = generate_hmac_secret()
    (keys / "hmac.secret").write_text(secret_text + "\n")
    progress("delivery: starting mtsg core-receiver and mtsg serve pushing to it")
    receiver = start_receiver(data_dir / "receiver", keys / "hmac.secret")
    receiver_url = f"http://{receiver.target}"
    gateway = start_gateway(
        data_dir / "delivery-gateway",
        {
            "MTSG_COMMANDS_ENDPOINT_URLS": f"{receiver_url}/commands",
            "MTSG_COMMANDS_HMAC_SECRET_FILE": str(keys / "hmac.secret"),
            # Every login here is meant to FREEZE: the safety valve would (rightly) hold most back.
            "MTSG_LOGIN_MAX_FREEZES_PER_MINUTE": str(max(100, count * 2)),
        },
    )
    try:
        asyncio.run(_send_logins(gateway.target, count, rate))
        applied = _wait_for(receiver_url, count, timeout=60)
        direct = _direct_ms(receiver_url, parse_hmac_secret(secret_text), count)
    finally:
        gateway.stop()
        receiver.stop()
    latencies = _latencies_ms(applied)
    figures = DeliveryFigures(
        commands=count,
        rate_per_second=rate,
        delivered=len(applied),
        p50_ms=statistics.median(latencies) if latencies else float("nan"),
        p99_ms=percentile(sorted(latencies), 0.99),
        max_ms=max(latencies, default=float("nan")),
        direct_p50_ms=statistics.median(direct),
        direct_p99_ms=percentile(sorted(direct), 0.99),
    )
    progress(f"delivery: {figures.delivered}/{count} delivered, p99 {figures.p99_ms:.1f} ms")
    return figures


def render_delivery(figures: DeliveryFigures) -> str:
    verdict = "meets" if figures.p99_ms < TARGET_P99_MS else "MISSES"
    return "\n".join(
        [
            f"verdict -> delivery ({figures.delivered}/{figures.commands} FREEZE commands"
            f" at {figures.rate_per_second:g}/s, mtsg serve -> mtsg core-receiver):",
            f"  push      p50 {figures.p50_ms:7.2f} ms   p99 {figures.p99_ms:7.2f} ms   max {figures.max_ms:7.2f} ms"
            f"   ({verdict} the p99 < {TARGET_P99_MS:.0f} ms target)",
            f"  baseline  p50 {figures.direct_p50_ms:7.2f} ms   p99 {figures.direct_p99_ms:7.2f} ms"
            "   (signed POST straight to the receiver, no outbox)",
        ]
    )
