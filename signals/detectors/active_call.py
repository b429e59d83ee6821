"""Active call: victims are coached over the phone while they log in and transfer.

A call alone is no reason to act (people log in while talking to the bank itself,
whose number is rarely a contact), so it is at most MEDIUM: what it adds is the
context that turns a remote-control app or a sideloaded app into a freeze.
"""

from __future__ import annotations

from signals.context import LoginContext
from signals.findings import Finding, Severity
from signals.kinds import Measure, kind
from signals.telemetry import LoginTelemetry

ACTIVE_CALL = "ACTIVE_CALL"

KINDS = (
    kind(
        ACTIVE_CALL,
        "call",
        (Severity.LOW, Severity.MEDIUM),
        "A phone call is active during login; MEDIUM when the caller is not in the contacts.",
        measures=(Measure("call_minutes", 0, 100_000, "minutes"),),
    ),
)


def detect_active_call(telemetry: LoginTelemetry, context: LoginContext) -> list[Finding]:
    call = telemetry.call
    if not call.active_call:
        return []
    evidence: dict[str, str] = {}
    if call.started_at is not None:
        evidence["call_minutes"] = str(max(0, int((context.now - call.started_at) // 60)))
    if call.caller_in_contacts is False:
        evidence["caller_in_contacts"] = "false"
        return [
            Finding(
                ACTIVE_CALL,
                Severity.MEDIUM,
                "a phone call from a number not in contacts is active",
                evidence,
            )
        ]
    if call.caller_in_contacts is True:
        evidence["caller_in_contacts"] = "true"
    return [Finding(ACTIVE_CALL, Severity.LOW, "a phone call is active", evidence)]
