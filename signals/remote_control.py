"""Remote-control apps: the catalogue of known products and the detector that reads it.

Fraudsters ask victims to install a legitimate remote-support tool, then drive the
phone while the victim is kept on a call.  The catalogue is data (TOML text the
gateway reads from a file); parsing it here keeps the rules about its shape in one
place and the brain free of I/O.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from signals.findings import Finding, Severity
from signals.kinds import kind
from signals.telemetry import LoginTelemetry

REMOTE_CONTROL_APP_INSTALLED = "REMOTE_CONTROL_APP_INSTALLED"
REMOTE_CONTROL_APP_ACTIVE = "REMOTE_CONTROL_APP_ACTIVE"
SCREEN_SHARED = "SCREEN_SHARED"
REMOTE_INPUT_ACTIVE = "REMOTE_INPUT_ACTIVE"

KINDS = (
    kind(
        REMOTE_CONTROL_APP_INSTALLED,
        "remote_control",
        (Severity.MEDIUM,),
        "A known remote-control app is installed but not running.",
        per_app=True,
    ),
    kind(
        REMOTE_CONTROL_APP_ACTIVE,
        "remote_control",
        (Severity.HIGH,),
        "A known remote-control app is running, on screen, or holds the accessibility service.",
        per_app=True,
    ),
    kind(SCREEN_SHARED, "remote_control", (Severity.HIGH,), "The screen is being shared."),
    kind(REMOTE_INPUT_ACTIVE, "remote_control", (Severity.HIGH,), "The screen is being driven remotely."),
)


class CatalogError(ValueError):
    """The catalogue text is not valid; the message names the entry."""


@dataclass(frozen=True, slots=True)
class RemoteControlApp:
    package: str
    name: str
    vendor: str
    source: str


@dataclass(frozen=True, slots=True)
class RemoteControlCatalog:
    by_package: Mapping[str, RemoteControlApp]

    @classmethod
    def of(cls, apps: Iterable[RemoteControlApp]) -> RemoteControlCatalog:
        return cls(MappingProxyType({app.package: app for app in apps}))


def parse_catalog(text: str) -> RemoteControlCatalog:
    """Parse the TOML catalogue; every entry needs package, name, vendor and source."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CatalogError(f"not valid TOML: {error}") from error
    except RecursionError:
        raise CatalogError("not readable TOML: nested too deeply") from None
    entries = document.get("app")
    if not isinstance(entries, list) or not entries:
        raise CatalogError("expected at least one [[app]] table")
    apps: list[RemoteControlApp] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries, start=1):
        fields = {}
        for key in ("package", "name", "vendor", "source"):
            value = entry.get(key)
            if not isinstance(value, str) or not value.strip():
                raise CatalogError(f"app #{index}: '{key}' must be a non-empty string")
            fields[key] = value.strip()
        if fields["package"] in seen:
            raise CatalogError(f"app #{index}: package {fields['package']!r} is listed twice")
        seen.add(fields["package"])
        apps.append(RemoteControlApp(**fields))
    return RemoteControlCatalog.of(apps)


def _activity(app_running: bool, foreground: bool, accessibility: bool) -> str:
    if foreground:
        return "is open on screen"
    if accessibility:
        return "holds the accessibility service"
    if app_running:
        return "is running"
    return ""


def detect_remote_control(telemetry: LoginTelemetry, catalog: RemoteControlCatalog) -> list[Finding]:
    findings: list[Finding] = []
    # The catalogue's few packages looked up among the login's, in C; the apps walked only on a hit.
    # Asked of the frozenset: a dict view intersected with a frozenset walks the frozenset instead.
    installed_products = telemetry.package_names.intersection(catalog.by_package)
    for installed in telemetry.installed_apps if installed_products else ():
        known = catalog.by_package.get(installed.package_name)
        if known is None:
            continue
        evidence = {"package_name": installed.package_name, "product": known.name, "vendor": known.vendor}
        activity = _activity(installed.running, installed.foreground, installed.accessibility_service_enabled)
        if activity:
            evidence["state"] = activity
            findings.append(Finding(REMOTE_CONTROL_APP_ACTIVE, Severity.HIGH, f"{known.name} {activity}", evidence))
        else:
            findings.append(
                Finding(REMOTE_CONTROL_APP_INSTALLED, Severity.MEDIUM, f"{known.name} is installed", evidence)
            )
    screen = telemetry.screen
    if screen.remote_input:
        findings.append(Finding(REMOTE_INPUT_ACTIVE, Severity.HIGH, "the screen is being driven remotely"))
    if screen.screen_sharing:
        findings.append(Finding(SCREEN_SHARED, Severity.HIGH, "the screen is being shared"))
    return findings
