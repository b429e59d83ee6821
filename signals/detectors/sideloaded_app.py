"""Sideloaded risky app: catches the voice-phishing app no registry knows yet.

Fraudsters send a link; the victim installs an APK outside the store and grants it
what it needs to intercept calls and messages or to drive the screen.  An app that
both came from outside an official store and holds such a capability is worth a
finding even with no blocklist entry.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import compress
from operator import attrgetter

from signals.findings import Finding, Severity
from signals.kinds import Measure, kind
from signals.telemetry import InstalledApp, InstallerClass, LoginTelemetry
from signals.wording import listing

SIDELOADED_RISKY_APP = "SIDELOADED_RISKY_APP"

# A tuple, not a set: membership then compares identities in C, where a set calls the enum's
# __hash__, a Python function.
SIDELOADED_INSTALLERS = (InstallerClass.PACKAGE_INSTALLER, InstallerClass.NONE, InstallerClass.THIRD_PARTY_STORE)
# The same installers by their value strings, whose hashes are cached: a login's ~230 apps are
# screened in C by these, at about half the cost of calling ``is_sideloaded`` on each.
_SIDELOADED_VALUES = frozenset(installer.value for installer in SIDELOADED_INSTALLERS)
_INSTALLER_VALUE = attrgetter("installer_class._value_")
# Capability -> the Android permissions (short names) that grant it.
_PERMISSIONS: dict[str, frozenset[str]] = {
    "accessibility": frozenset({"BIND_ACCESSIBILITY_SERVICE"}),
    "sms": frozenset({"READ_SMS", "RECEIVE_SMS", "SEND_SMS", "RECEIVE_MMS", "RECEIVE_WAP_PUSH"}),
    "call_control": frozenset(
        {
            "CALL_PHONE",
            "PROCESS_OUTGOING_CALLS",
            "ANSWER_PHONE_CALLS",
            "READ_PHONE_STATE",
            "READ_CALL_LOG",
            "WRITE_CALL_LOG",
            "BIND_CALL_REDIRECTION_SERVICE",
            "BIND_INCALL_SERVICE",
            "BIND_SCREENING_SERVICE",
        }
    ),
    "overlay": frozenset({"SYSTEM_ALERT_WINDOW"}),
    "device_admin": frozenset({"BIND_DEVICE_ADMIN"}),
    "notification_access": frozenset({"BIND_NOTIFICATION_LISTENER_SERVICE"}),
}
# Any one of these lets an app steal a code or a call by itself.
_STRONG = frozenset({"accessibility", "sms", "call_control", "device_admin"})
_WORDS = {
    "accessibility": "accessibility",
    "sms": "SMS",
    "call_control": "call control",
    "overlay": "screen overlay",
    "device_admin": "device admin",
    "notification_access": "notification access",
}

KINDS = (
    kind(
        SIDELOADED_RISKY_APP,
        "sideloaded_app",
        (Severity.MEDIUM, Severity.HIGH),
        "An app from outside an official store holds dangerous capabilities; HIGH with accessibility, SMS, "
        "call control or device admin.",
        per_app=True,
        measures=(Measure("capability_count", 1, len(_PERMISSIONS), "capabilities"),),
    ),
)


def is_sideloaded(app: InstalledApp) -> bool:
    return not app.system_app and app.installer_class in SIDELOADED_INSTALLERS


def sideloaded_apps(apps: Sequence[InstalledApp]) -> Iterator[InstalledApp]:
    """The sideloaded apps among ``apps``, in their order: screened by installer in C, then checked."""
    screened = compress(apps, map(_SIDELOADED_VALUES.__contains__, map(_INSTALLER_VALUE, apps)))
    return filter(is_sideloaded, screened)


def risky_capabilities(app: InstalledApp) -> tuple[str, ...]:
    """Dangerous capabilities the app holds, by granted permission or by the SDK's own flags."""
    granted = {permission.rsplit(".", 1)[-1] for permission in app.granted_permissions}
    held = {capability for capability, permissions in _PERMISSIONS.items() if granted & permissions}
    if app.accessibility_service_enabled:
        held.add("accessibility")
    if app.device_admin:
        held.add("device_admin")
    if app.draw_over_apps:
        held.add("overlay")
    return tuple(capability for capability in _PERMISSIONS if capability in held)


def sideloaded_risk(app: InstalledApp) -> tuple[Severity, tuple[str, ...]] | None:
    """Severity and capabilities of a sideloaded app holding any; None for a store app or a harmless one."""
    if not is_sideloaded(app):
        return None
    capabilities = risky_capabilities(app)
    if not capabilities:
        return None
    return (Severity.HIGH if _STRONG.intersection(capabilities) else Severity.MEDIUM), capabilities


def describe_capabilities(capabilities: tuple[str, ...]) -> str:
    return listing([_WORDS[capability] for capability in capabilities])


def app_name(app: InstalledApp) -> str:
    return app.label or app.package_name


def detect_sideloaded_apps(telemetry: LoginTelemetry) -> list[Finding]:
    findings: list[Finding] = []
    for app in sideloaded_apps(telemetry.installed_apps):
        risk = sideloaded_risk(app)
        if risk is None:
            continue
        severity, capabilities = risk
        findings.append(
            Finding(
                SIDELOADED_RISKY_APP,
                severity,
                f"{app_name(app)} was installed outside an official store and can use "
                f"{describe_capabilities(capabilities)}",
                {
                    "package": app.package_name,
                    "installer": app.installer_class.value,
                    "installer_package": app.installer_package,
                    "capabilities": ", ".join(capabilities),
                    "capability_count": str(len(capabilities)),
                },
            )
        )
    return findings
