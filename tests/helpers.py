"""Builders for test telemetry, configs and requests, so each test states only what matters to it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from gateway.config import Config, load_config
from gateway.generated.mtsg.v1 import (
    blocklist_pb2,
    blocklist_service_pb2,
    event_service_pb2,
    telemetry_pb2,
    threat_signal_service_pb2,
)

# The policy mtsg ships, and a one-scenario policy that steps up any login during a call.
SHIPPED = Path(__file__).parents[1] / "signals" / "data" / "default_policy.toml"
CALL_STEPS_UP = """
[[scenarios]]
id = "any-call"
description = "Any active call asks for an OTP."
action = "step_up"
step_up_method = "otp"
when = { code = "ACTIVE_CALL" }
"""


# The `mtsg` command as this test run's interpreter runs it (the venv's console script may be absent).
MTSG = [sys.executable, "-m", "gateway.cli"]


def run_mtsg(
    *arguments: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    environment: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run one `mtsg` command to its end, output captured.

    ``env`` adds to the test's environment; ``environment`` replaces it (an operator's host that
    has none of the gateway's settings).
    """
    base = environment if environment is not None else {**os.environ, **(env or {})}
    return subprocess.run([*MTSG, *arguments], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=base)


def telemetry(**fields: Any) -> telemetry_pb2.LoginTelemetry:
    """A clean login for a fresh customer and device, collected now, unless ``fields`` say otherwise."""
    fields.setdefault("customer_id", f"cust-{uuid.uuid4().hex[:10]}")
    fields.setdefault("device_id", f"dev-{uuid.uuid4().hex[:10]}")
    fields.setdefault("nonce", uuid.uuid4().hex)
    message = telemetry_pb2.LoginTelemetry(**fields)
    if not message.HasField("collected_at"):
        message.collected_at.FromNanoseconds(int(time.time() * 1e9))
    return message


def again(message: telemetry_pb2.LoginTelemetry) -> telemetry_pb2.LoginTelemetry:
    """The same login sent anew, as a device would: a fresh nonce and collection time (a resend is a replay)."""
    fresh = telemetry_pb2.LoginTelemetry()
    fresh.CopyFrom(message)
    fresh.nonce = uuid.uuid4().hex
    fresh.collected_at.FromNanoseconds(int(time.time() * 1e9))
    return fresh


def app(package_name: str, **fields: Any) -> telemetry_pb2.InstalledApp:
    return telemetry_pb2.InstalledApp(package_name=package_name, **fields)


def request(message: telemetry_pb2.LoginTelemetry, request_id: str = "") -> threat_signal_service_pb2.CheckLoginRequest:
    return threat_signal_service_pb2.CheckLoginRequest(request_id=request_id, telemetry=message)


def phone_change(customer_id: str, **fields: Any) -> event_service_pb2.PhoneNumberChange:
    change = event_service_pb2.PhoneNumberChange(
        event_id=fields.pop("event_id", f"evt-{uuid.uuid4().hex[:12]}"),
        customer_id=customer_id,
        previous_phone_number=fields.pop("previous_phone_number", "+821012345678"),
        new_phone_number=fields.pop("new_phone_number", "+821098765432"),
        source=fields.pop("source", "telco:test"),
        **fields,
    )
    if not change.HasField("changed_at"):
        change.changed_at.FromNanoseconds(int((time.time() - 3600) * 1e9))
    return change


def freezing_login(customer_id: str = "") -> telemetry_pb2.LoginTelemetry:
    """AnyDesk running during a phone call: the built-in policy answers FREEZE, so a command is written."""
    return telemetry(
        customer_id=customer_id or f"cust-{uuid.uuid4().hex[:8]}",
        installed_apps=[app("com.anydesk.anydeskandroid", label="AnyDesk", running=True)],
        call={"active_call": True},
    )


def gateway_config(tmp_path: Path, store_url: str = "", *, metrics: bool = False, **settings: str) -> Config:
    """A gateway on a free port with its data under ``tmp_path``; ``settings`` as section__key="value"."""
    overrides: dict[tuple[str, str], tuple[Any, str]] = {
        ("server", "listen"): ("127.0.0.1:0", "test"),
        ("server", "metrics_listen"): ("127.0.0.1:0" if metrics else "", "test"),
        ("store", "data_dir"): (str(tmp_path / "data"), "test"),
        ("store", "url"): (store_url, "test"),
        # Replicas on PostgreSQL must share one key; harmless on SQLite.
        ("privacy", "phone_hash_key_file"): (str(tmp_path / "phone-hash.key"), "test"),
        # Most tests are about something else; tests/gateway/security/test_access.py runs with TLS and identities.
        ("auth", "insecure"): ("true", "test"),
    }
    for name, value in settings.items():
        section, key = name.split("__", 1)
        overrides[(section, key)] = (value, "test")
    return load_config(environ={}, overrides=overrides).config


def package_entry_request(package_name: str, family: str) -> blocklist_service_pb2.AddEntryRequest:
    """Add a voice-phishing app to the registry by its package name."""
    return blocklist_service_pb2.AddEntryRequest(
        entry=blocklist_pb2.BlocklistEntry(
            key_type=blocklist_pb2.BLOCKLIST_KEY_TYPE_PACKAGE_NAME,
            value=package_name,
            category=blocklist_pb2.THREAT_CATEGORY_VOICE_PHISHING,
            family=family,
            source="test",
        )
    )


def unknown_field(number: int, payload: bytes) -> bytes:
    """A length-delimited field no message of the contract defines, as a newer or hostile client sends."""
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
