"""Builders for test telemetry, so each test states only what matters to it."""

from __future__ import annotations

import time
import uuid
from typing import Any

from gateway.generated.mtsg.v1 import event_service_pb2, telemetry_pb2, threat_signal_service_pb2


def telemetry(**fields: Any) -> telemetry_pb2.LoginTelemetry:
    """A clean login for a fresh customer and device, collected now, unless ``fields`` say otherwise."""
    fields.setdefault("customer_id", f"cust-{uuid.uuid4().hex[:10]}")
    fields.setdefault("device_id", f"dev-{uuid.uuid4().hex[:10]}")
    fields.setdefault("nonce", uuid.uuid4().hex)
    message = telemetry_pb2.LoginTelemetry(**fields)
    if not message.HasField("collected_at"):
        message.collected_at.FromNanoseconds(int(time.time() * 1e9))
    return message


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
