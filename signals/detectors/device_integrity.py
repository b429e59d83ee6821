"""Device integrity: the SDK's own checks, each flag its own finding so policy can weigh it."""

from __future__ import annotations

from signals.findings import Finding, Severity
from signals.kinds import kind
from signals.telemetry import Attestation, LoginTelemetry

DEVICE_ROOTED = "DEVICE_ROOTED"
DEVICE_EMULATOR = "DEVICE_EMULATOR"
HOOKING_FRAMEWORK = "HOOKING_FRAMEWORK"
DEBUGGER_ATTACHED = "DEBUGGER_ATTACHED"
DEVELOPER_MODE = "DEVELOPER_MODE"
ADB_ENABLED = "ADB_ENABLED"
BANK_APP_TAMPERED = "BANK_APP_TAMPERED"
BANK_APP_UNTRUSTED_INSTALLER = "BANK_APP_UNTRUSTED_INSTALLER"
MOCK_LOCATION = "MOCK_LOCATION"
ATTESTATION_FAILED = "ATTESTATION_FAILED"

# (flag attribute, code, severity, summary).  Severity says how much the sign means alone.
# Developer mode is common among ordinary users, hence INFO; root is an enthusiast's choice as
# often as an attacker's, hence MEDIUM (it counts with other signs); a hooking framework, a
# debugger on the banking app or an emulator is attack tooling, hence HIGH; a tampered
# banking app is a repackaged fake, hence CRITICAL.
_CHECKS: tuple[tuple[str, str, Severity, str], ...] = (
    ("app_tampered", BANK_APP_TAMPERED, Severity.CRITICAL, "the banking app has been tampered with"),
    ("rooted", DEVICE_ROOTED, Severity.MEDIUM, "the device is rooted or jailbroken"),
    ("hooking_framework", HOOKING_FRAMEWORK, Severity.HIGH, "a hooking framework is present"),
    ("debugger_attached", DEBUGGER_ATTACHED, Severity.HIGH, "a debugger is attached to the banking app"),
    ("emulator", DEVICE_EMULATOR, Severity.HIGH, "the banking app runs in an emulator"),
    (
        "untrusted_installer",
        BANK_APP_UNTRUSTED_INSTALLER,
        Severity.MEDIUM,
        "the banking app was not installed from a trusted store",
    ),
    ("mock_location", MOCK_LOCATION, Severity.MEDIUM, "a mock-location provider is active"),
    ("adb_enabled", ADB_ENABLED, Severity.LOW, "USB debugging is switched on"),
    ("developer_mode", DEVELOPER_MODE, Severity.INFO, "developer options are switched on"),
)

KINDS = (
    *(
        kind(code, "device_integrity", (severity,), summary[:1].upper() + summary[1:] + ".")
        for _, code, severity, summary in _CHECKS
    ),
    kind(
        ATTESTATION_FAILED,
        "device_integrity",
        (Severity.MEDIUM, Severity.HIGH),
        "The platform's attestation fails: HIGH for basic integrity or an unknown app copy, else MEDIUM.",
    ),
)


def _attestation_finding(attestation: Attestation) -> Finding | None:
    """The weakest failed level speaks: failing basic integrity means more than failing the device level."""
    failed = [
        level
        for level, passed in (
            ("basic_integrity", attestation.meets_basic_integrity),
            ("device_integrity", attestation.meets_device_integrity),
            ("app_recognized", attestation.app_recognized),
        )
        if not passed
    ]
    if not failed:
        return None
    severe = "basic_integrity" in failed or "app_recognized" in failed
    if "app_recognized" in failed:
        summary = "the platform does not recognise this copy of the banking app"
    elif "basic_integrity" in failed:
        summary = "the platform's integrity check fails on this device"
    else:
        summary = "the platform cannot vouch for this device's integrity"
    return Finding(
        ATTESTATION_FAILED,
        Severity.HIGH if severe else Severity.MEDIUM,
        summary,
        {"provider": attestation.provider, "failed": ", ".join(failed)},
    )


def detect_device_integrity(telemetry: LoginTelemetry) -> list[Finding]:
    integrity = telemetry.integrity
    findings = [
        Finding(code=code, severity=severity, summary=summary, evidence={"flag": flag})
        for flag, code, severity, summary in _CHECKS
        if getattr(integrity, flag)
    ]
    if telemetry.attestation is not None:
        attested = _attestation_finding(telemetry.attestation)
        if attested is not None:
            findings.append(attested)
    return findings
