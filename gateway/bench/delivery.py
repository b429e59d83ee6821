"""Verdict-to-delivery figures: how long a FREEZE takes from the verdict to core banking's receiver.

Real processes: ``mtsg serve`` pushes to ``mtsg core-receiver``, which stamps the
arrival of each command; the latency of a command is arrival minus the verdict's
time (one machine, one clock).  Logins are sent at a steady rate, not as fast as
possible: the target (p99 under 100 ms) is about a healthy gateway, not a saturated
one.  Beside it, the baseline: the same signed POSTs sent straight to the receiver
by this process, which is the floor the outbox adds its cost to.

Then the same pushes again while the bench's login workload runs beside them (at half the
rate the gateway reached): a bank's freezes come at its peak, when the dispatcher shares
the event loop and the store with hundreds of logins a second.  The pushes of each run are
told apart in the receiver's ledger by their customer ids.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.bench.load import ClientFleet, LoadResult
from gateway.bench.processes import start_gateway, start_receiver
from gateway.bench.report import percentile, progress
from gateway.client import MtsgClient
from gateway.commands.webhook_signing import WebhookSigner, generate_hmac_secret, parse_hmac_secret
from gateway.generated.mtsg.v1 import telemetry_pb2

TARGET_P99_MS = 100.0
# The customer ids of the bench's own FREEZE logins start so; the workload's are "bench-cust-N".
PUSH_CUSTOMER_PREFIX = "bench-push-"
# A load beside the pushes warms up this long before the first push.
BESIDE_WARMUP_SECONDS = 1.0


@dataclass(frozen=True)
class BesideLoad:
    """The logins sent beside the pushes, and how they fared."""

    rate_per_second: float
    answered: int
    p99_ms: float
    errors: dict[str, int]


@dataclass(frozen=True)
class PushFigures:
    commands: int
    delivered: int
    p50_ms: float
    p99_ms: float
    max_ms: float


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
    # The same pushes with the login workload running beside them; None when not measured.
    under_load: PushFigures | None = None
    beside: BesideLoad | None = None


def _freezing_login(phase: str) -> telemetry_pb2.LoginTelemetry:
    login = telemetry_pb2.LoginTelemetry(
        customer_id=f"{PUSH_CUSTOMER_PREFIX}{phase}-{uuid.uuid4().hex[:10]}",
        device_id=f"dev-{uuid.uuid4().hex[:10]}",
        nonce=uuid.uuid4().hex,
        installed_apps=[
            telemetry_pb2.InstalledApp(package_name="com.anydesk.anydeskandroid", label="AnyDesk", running=True)
        ],
        call=telemetry_pb2.CallState(active_call=True),
    )
    login.collected_at.FromNanoseconds(time.time_ns())
    return login


async def _send_logins(target: str, phase: str, count: int, rate: float) -> None:
    async with MtsgClient(target, timeout=30) as client:
        start = time.monotonic()
        for index in range(count):
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await client.check_login(_freezing_login(phase))
            if (index + 1) % max(1, count // 4) == 0:
                progress(f"delivery ({phase}): {index + 1}/{count} FREEZE verdicts sent")


def _wait_for(receiver_url: str, phase: str, count: int, timeout: float) -> list[dict]:  # type: ignore[type-arg]
    """The receiver's ledger rows of this phase's pushes, once all ``count`` arrived or ``timeout`` passed."""
    prefix = f"{PUSH_CUSTOMER_PREFIX}{phase}-"
    deadline = time.monotonic() + timeout
    while True:
        ledger = httpx.get(f"{receiver_url}/_applied", timeout=30).json()["applied"]
        applied = [row for row in ledger if row["customer_id"].startswith(prefix)]
        if len(applied) >= count or time.monotonic() > deadline:
            return applied
        time.sleep(0.2)


def _pushes(target: str, receiver_url: str, phase: str, count: int, rate: float) -> PushFigures:
    asyncio.run(_send_logins(target, phase, count, rate))
    latencies = sorted(_latencies_ms(_wait_for(receiver_url, phase, count, timeout=60)))
    figures = PushFigures(
        commands=count,
        delivered=len(latencies),
        p50_ms=statistics.median(latencies) if latencies else float("nan"),
        p99_ms=percentile(latencies, 0.99),
        max_ms=max(latencies, default=float("nan")),
    )
    progress(f"delivery ({phase}): {figures.delivered}/{count} delivered, p99 {figures.p99_ms:.1f} ms")
    return figures


def _pushes_under_load(
    target: str, receiver_url: str, count: int, rate: float, beside: Callable[[str], ClientFleet]
) -> tuple[PushFigures, BesideLoad]:
    fleet = beside(target)
    progress(f"delivery (load): {fleet.rate:.0f} logins/s beside the pushes, {BESIDE_WARMUP_SECONDS:g} s warm-up")
    start_wall = fleet.begin()
    time.sleep(max(0.0, start_wall + BESIDE_WARMUP_SECONDS - time.time()))
    pushes = _pushes(target, receiver_url, "load", count, rate)
    load = LoadResult.combined(fleet.results())
    answered = len(load.latencies)
    return pushes, BesideLoad(fleet.rate, answered, percentile(load.latencies, 0.99) * 1000, load.errors)


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


def measure_delivery(
    data_dir: Path,
    count: int,
    rate: float,
    *,
    env: dict[str, str] | None = None,
    workers: int = 1,
    beside: Callable[[str], ClientFleet] | None = None,
) -> DeliveryFigures:
    """``count`` pushes at ``rate``; then, if ``beside`` builds a load for the gateway's address, again under it.

    ``env`` adds settings of the gateway started here (the bench's raised login limits).
    """
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
            **(env or {}),
            "MTSG_COMMANDS_ENDPOINT_URLS": f"{receiver_url}/commands",
            "MTSG_COMMANDS_HMAC_SECRET_FILE": str(keys / "hmac.secret"),
            # Every push login here is meant to FREEZE, and so are some of the workload's beside
            # them: the safety valve would (rightly) hold most back.
            "MTSG_LOGIN_MAX_FREEZES_PER_MINUTE": "1000000",
        },
        workers=workers,
    )
    try:
        idle = _pushes(gateway.target, receiver_url, "idle", count, rate)
        direct = sorted(_direct_ms(receiver_url, parse_hmac_secret(secret_text), count))
        loaded = _pushes_under_load(gateway.target, receiver_url, count, rate, beside) if beside else None
    finally:
        gateway.stop()
        receiver.stop()
    return DeliveryFigures(
        commands=count,
        rate_per_second=rate,
        delivered=idle.delivered,
        p50_ms=idle.p50_ms,
        p99_ms=idle.p99_ms,
        max_ms=idle.max_ms,
        direct_p50_ms=statistics.median(direct),
        direct_p99_ms=percentile(direct, 0.99),
        under_load=loaded[0] if loaded else None,
        beside=loaded[1] if loaded else None,
    )


def _push_line(label: str, p50_ms: float, p99_ms: float, max_ms: float) -> str:
    verdict = "meets" if p99_ms < TARGET_P99_MS else "MISSES"
    return (
        f"  {label:<11}p50 {p50_ms:7.2f} ms   p99 {p99_ms:7.2f} ms   max {max_ms:7.2f} ms"
        f"   ({verdict} the p99 < {TARGET_P99_MS:.0f} ms target)"
    )


def render_delivery(figures: DeliveryFigures) -> str:
    lines = [
        f"verdict -> delivery ({figures.delivered}/{figures.commands} FREEZE commands"
        f" at {figures.rate_per_second:g}/s, mtsg serve -> mtsg core-receiver):",
        _push_line("push", figures.p50_ms, figures.p99_ms, figures.max_ms),
    ]
    loaded, beside = figures.under_load, figures.beside
    if loaded is not None and beside is not None:
        errors = ", ".join(f"{code} {count:,}" for code, count in sorted(beside.errors.items())) or "none"
        lines += [
            _push_line("under load", loaded.p50_ms, loaded.p99_ms, loaded.max_ms),
            f"  {'':<11}{loaded.delivered}/{loaded.commands} delivered; beside them"
            f" {beside.rate_per_second:.0f} logins/s: {beside.answered:,} answered, p99 {beside.p99_ms:.2f} ms,"
            f" errors {errors}",
        ]
    lines.append(
        f"  {'baseline':<11}p50 {figures.direct_p50_ms:7.2f} ms   p99 {figures.direct_p99_ms:7.2f} ms"
        "   (signed POST straight to the receiver, no outbox)"
    )
    return "\n".join(lines)
