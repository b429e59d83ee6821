"""Split install: apps that appeared on this device since its previous login.

Voice-phishing kits arrive in steps — a harmless-looking loader first, the payload
minutes before the victim is told to open the bank app.  Comparing with the
device's previous inventory shows what is new, whatever its name.  A new app that
is sideloaded is the strong signal; new store apps are only counted.
"""

from __future__ import annotations

from signals.context import LoginContext
from signals.detectors.sideloaded_app import app_name, describe_capabilities, is_sideloaded, sideloaded_risk
from signals.findings import Finding, Severity
from signals.kinds import Measure, kind
from signals.telemetry import InstalledApp, LoginTelemetry
from signals.wording import counted, listing

APPS_INSTALLED_SINCE_LAST_LOGIN = "APPS_INSTALLED_SINCE_LAST_LOGIN"
SIDELOADED_APP_INSTALLED_SINCE_LAST_LOGIN = "SIDELOADED_APP_INSTALLED_SINCE_LAST_LOGIN"
_NAMES_SHOWN = 5

KINDS = (
    kind(
        APPS_INSTALLED_SINCE_LAST_LOGIN,
        "app_inventory",
        (Severity.INFO,),
        "Apps appeared on this device since its previous login.",
        measures=(
            Measure("new_apps", 1, 100_000, "apps"),
            Measure("hours_since_last_login", 0, 1_000_000, "hours"),
        ),
    ),
    kind(
        SIDELOADED_APP_INSTALLED_SINCE_LAST_LOGIN,
        "app_inventory",
        (Severity.MEDIUM, Severity.HIGH),
        "A sideloaded app appeared since the previous login; HIGH when it holds dangerous capabilities.",
        per_app=True,
        measures=(
            Measure("capability_count", 0, 6, "capabilities"),
            Measure("hours_since_last_login", 0, 1_000_000, "hours"),
        ),
    ),
)


def _sideloaded_finding(app: InstalledApp, hours: str) -> Finding:
    risk = sideloaded_risk(app)
    capabilities = risk[1] if risk else ()
    holding = f" and can use {describe_capabilities(capabilities)}" if capabilities else ""
    return Finding(
        SIDELOADED_APP_INSTALLED_SINCE_LAST_LOGIN,
        Severity.HIGH if capabilities else Severity.MEDIUM,
        f"{app_name(app)} was sideloaded since the last login{holding}",
        {
            "package": app.package_name,
            "installer": app.installer_class.value,
            "capabilities": ", ".join(capabilities),
            "capability_count": str(len(capabilities)),
            "hours_since_last_login": hours,
        },
    )


def detect_split_install(telemetry: LoginTelemetry, context: LoginContext) -> list[Finding]:
    previous = context.previous_inventory
    if previous is None:
        return []
    new_names = telemetry.package_names - previous.package_names
    if not new_names:
        return []
    new_apps = [app for app in telemetry.installed_apps if app.package_name in new_names]
    hours = str(max(0, int((context.now - previous.observed_at) // 3600)))
    names = sorted({app_name(app) for app in new_apps})
    hidden = len(names) - _NAMES_SHOWN
    shown = listing([*names[:_NAMES_SHOWN], f"{hidden:,} more"] if hidden > 0 else names)
    findings = [
        Finding(
            APPS_INSTALLED_SINCE_LAST_LOGIN,
            Severity.INFO,
            f"{counted(len(new_apps), 'app')} appeared since the last login: {shown}",
            {"new_apps": str(len(new_apps)), "hours_since_last_login": hours, "examples": shown},
        )
    ]
    findings.extend(_sideloaded_finding(app, hours) for app in new_apps if is_sideloaded(app))
    return findings
