"""The logs of a whole run, at debug level, carry no phone number, raw customer or device id, or app list.

A real `mtsg serve` pushes commands to a real receiver while it checks logins (clean,
blocklisted, replayed, throttled, malformed), takes phone-number changes (valid and not),
and a blocklist entry; then every line it wrote is searched.
"""

from __future__ import annotations

import json
import re
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from gateway.client import MtsgClient
from tests.helpers import again, app, freezing_login, package_entry_request, phone_change, telemetry
from tests.integration.conftest import MTSG, LoggedProcess, gateway_env, wait_applied

PROBE_APPS = [f"com.privacy.probe.app{n:02d}" for n in range(40)]
BLOCKLISTED = "com.privacy.probe.evil"
# Numbers a log must never show, in any of the shapes a number can take.
NUMBERS = ["+821055501234", "+821055509876", "+447700900123"]


def _shapes(number: str) -> list[str]:
    digits = number.lstrip("+")
    national = "0" + digits[2:]  # Korea and the UK both write a leading 0 nationally
    return [number, digits, national, digits[2:]]


@pytest.fixture
def gateway(tmp_path: Path, keys: Path, receiver: tuple[LoggedProcess, str]) -> Iterator[tuple[LoggedProcess, str]]:
    _, receiver_url = receiver
    process = LoggedProcess(
        [*MTSG, "serve", "--insecure", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d")],
        tmp_path / "gateway.log",
        {
            **gateway_env(keys, f"{receiver_url}/commands"),
            "MTSG_LOGGING_LEVEL": "debug",
            "MTSG_SERVER_METRICS_LISTEN": "",
            "MTSG_LOGIN_DEVICE_LOGIN_BURST": "3",
        },
        tmp_path,
    )
    try:
        yield process, f"127.0.0.1:{process.wait_for_log('serving')['port']}"
    finally:
        process.stop()  # the test stops it first to read a complete log; a failed test leaves it to us


async def test_a_full_runs_logs_hold_no_phone_number_id_or_app_list(
    gateway: tuple[LoggedProcess, str], receiver: tuple[LoggedProcess, str]
) -> None:
    process, target = gateway
    customers = [f"cust-privacy-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    devices = [f"dev-privacy-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    async with MtsgClient(target, timeout=30) as client:
        await client.blocklist.AddEntry(package_entry_request(BLOCKLISTED, "ProbeFamily"), timeout=10)
        await client.report_phone_number_changes(
            [
                phone_change(customers[0], previous_phone_number=NUMBERS[0], new_phone_number=NUMBERS[1]),
                phone_change(customers[1], previous_phone_number=NUMBERS[1], new_phone_number=NUMBERS[2]),
            ]
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.report_phone_number_changes(
                [phone_change(customers[2], previous_phone_number=NUMBERS[2] + "999999", new_phone_number="+82")]
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        clean = telemetry(
            customer_id=customers[0], device_id=devices[0], installed_apps=[app(name) for name in PROBE_APPS]
        )
        assert (await client.check_login(clean)).action
        evil = telemetry(
            customer_id=customers[1],
            device_id=devices[1],
            installed_apps=[app(name) for name in PROBE_APPS] + [app(BLOCKLISTED, running=True)],
            call={"active_call": True},
        )
        await client.check_login(evil)
        with pytest.raises(grpc.aio.AioRpcError):  # the same nonce again: a replay
            await client.check_login(evil)
        throttled = telemetry(customer_id=customers[2], device_id=devices[2])
        codes = []
        for _ in range(6):
            try:
                await client.check_login(again(throttled))
                codes.append(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as error:
                codes.append(error.code())
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
        with pytest.raises(grpc.aio.AioRpcError):  # malformed: a phone number where a hash belongs
            await client.check_login(
                telemetry(customer_id=customers[0], installed_apps=[app("com.x", apk_sha256=NUMBERS[0])])
            )
        await client.check_login(freezing_login(customers[2]))
    _, receiver_url = receiver
    process.wait_for_log("command delivery failed; will retry")  # core banking is down at first
    httpx.post(f"{receiver_url}/_control", json={"fail_status": 0}, timeout=10)
    wait_applied(receiver_url, 1)
    process.process.send_signal(signal.SIGTERM)
    process.process.wait(timeout=30)
    process.stop()

    lines = process.log_path.read_text().splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    messages = {entry["message"] for entry in entries}
    # The run did what it was meant to, so the logs had something to give away.
    assert {"replayed login refused", "rpc", "serving"} <= messages
    text = "\n".join(lines)
    for number in NUMBERS:
        for shape in _shapes(number):
            assert shape not in text, f"{shape} appears in the log"
    for identifier in (*customers, *devices):
        assert identifier not in text, f"{identifier} appears in the log"
    for line in lines:
        assert len(set(re.findall(r"com\.privacy\.probe\.\w+", line))) <= 1, f"an app list in the log: {line[:300]}"
