"""Device integrity: the SDK's own checks, each flag its own finding so policy can weigh it."""

from __future__ import annotations

from signals.findings import Finding, Severity
from signals.telemetry import LoginTelemetry

DEVICE_ROOTED = "DEVICE_ROOTED"
DEVICE_EMULATOR = "DEVICE_EMULATOR"
HOOKING_FRAMEWORK = "HOOKING_FRAMEWORK"
DEBUGGER_ATTACHED = "DEBUGGER_ATTACHED"
DEVELOPER_MODE = "DEVELOPER_MODE"
ADB_ENABLED = "ADB_ENABLED"
BANK_APP_TAMPERED = "BANK_APP_TAMPERED"
BANK_APP_UNTRUSTED_INSTALLER = "BANK_APP_UNTRUSTED_INSTALLER"
MOCK_LOCATION = "MOCK_LOCATION"

# (flag attribute, code, severity, summary).  Developer mode alone is common among
# ordinary users, hence INFO; a tampered banking app is a repackaged fake, hence CRITICAL.
_CHECKS: tuple[tuple[str, str, Severity, str], ...] = (
    ("app_tampered", BANK_APP_TAMPERED, Severity.CRITICAL, "the banking app has been tampered with"),
    ("rooted", DEVICE_ROOTED, Severity.HIGH, "the device is rooted or jailbroken"),
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

COMPROMISED_DEVICE_CODES = frozenset({DEVICE_ROOTED, HOOKING_FRAMEWORK, DEBUGGER_ATTACHED, DEVICE_EMULATOR})


def detect_device_integrity(telemetry: LoginTelemetry) -> list[Finding]:
    integrity = telemetry.integrity
    return [
        Finding(code=code, severity=severity, summary=summary, evidence={"flag": flag})
        for flag, code, severity, summary in _CHECKS
        if getattr(integrity, flag)
    ]
