"""New device: victims are often moved onto a phone the fraudster controls."""

from __future__ import annotations

from signals.context import LoginContext
from signals.findings import Finding, Severity
from signals.kinds import Measure, kind
from signals.telemetry import LoginTelemetry

NEW_DEVICE = "NEW_DEVICE"

KINDS = (
    kind(
        NEW_DEVICE,
        "device",
        (Severity.LOW,),
        "The device was never seen for this customer.",
        measures=(Measure("known_devices", 0, 1_000_000, "devices"),),
    ),
)


def detect_new_device(telemetry: LoginTelemetry, context: LoginContext) -> list[Finding]:
    if telemetry.device_id in context.known_device_ids:
        return []
    known = len(context.known_device_ids)
    if known == 0:
        summary = "this is the first login on record for this customer"
    else:
        summary = "the login comes from a device never seen for this customer"
    return [
        Finding(
            code=NEW_DEVICE,
            severity=Severity.LOW,
            summary=summary,
            evidence={"device_id": telemetry.device_id, "known_devices": str(known)},
        )
    ]
