"""Each detector on the cases that matter, including the boundaries."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from signals.context import LoginContext, PhoneNumberChangeSummary
from signals.detectors.active_call import detect_active_call
from signals.detectors.device_integrity import detect_device_integrity
from signals.detectors.new_device import detect_new_device
from signals.detectors.phone_change import detect_recent_phone_change
from signals.findings import Severity
from signals.remote_control import CatalogError, detect_remote_control, parse_catalog
from signals.telemetry import CallState, DeviceIntegrity, InstalledApp, LoginTelemetry, ScreenState

NOW = 1_800_000_000.0
CATALOG = parse_catalog((Path(__file__).parents[2] / "signals" / "data" / "remote_control_apps.toml").read_text())


def login(**fields: object) -> LoginTelemetry:
    return LoginTelemetry(customer_id="c1", device_id="d1", collected_at=NOW, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("known", "expected"),
    [
        (frozenset(), "this is the first login on record for this customer"),
        (frozenset({"other"}), "the login comes from a device never seen for this customer"),
        (frozenset({"d1", "other"}), None),
    ],
)
def test_new_device(known: frozenset[str], expected: str | None) -> None:
    findings = detect_new_device(login(), LoginContext(now=NOW, known_device_ids=known))
    assert [finding.summary for finding in findings] == ([expected] if expected else [])


@pytest.mark.parametrize(
    ("call", "severity", "summary"),
    [
        (CallState(active_call=False), None, None),
        (CallState(active_call=True), Severity.LOW, "a phone call is active"),
        (CallState(active_call=True, caller_in_contacts=True), Severity.LOW, "a phone call is active"),
        (
            CallState(active_call=True, caller_in_contacts=False, started_at=NOW - 600),
            Severity.MEDIUM,
            "a phone call from a number not in contacts is active",
        ),
    ],
)
def test_active_call(call: CallState, severity: Severity | None, summary: str | None) -> None:
    findings = detect_active_call(login(call=call), LoginContext(now=NOW))
    if severity is None:
        assert findings == []
    else:
        assert [(finding.severity, finding.summary) for finding in findings] == [(severity, summary)]


def test_active_call_reports_its_length_in_minutes() -> None:
    findings = detect_active_call(login(call=CallState(active_call=True, started_at=NOW - 599)), LoginContext(now=NOW))
    assert findings[0].evidence["call_minutes"] == "9"


def test_every_integrity_flag_is_its_own_finding() -> None:
    everything = DeviceIntegrity(**{name: True for name in DeviceIntegrity.__dataclass_fields__})
    codes = [finding.code for finding in detect_device_integrity(login(integrity=everything))]
    assert len(codes) == len(set(codes)) == len(DeviceIntegrity.__dataclass_fields__)
    assert detect_device_integrity(login()) == []
    assert detect_device_integrity(login(integrity=DeviceIntegrity(app_tampered=True)))[0].severity is Severity.CRITICAL


@pytest.mark.parametrize(
    ("installed", "code", "summary"),
    [
        (InstalledApp("com.anydesk.anydeskandroid"), "REMOTE_CONTROL_APP_INSTALLED", "AnyDesk is installed"),
        (InstalledApp("com.anydesk.anydeskandroid", running=True), "REMOTE_CONTROL_APP_ACTIVE", "AnyDesk is running"),
        (
            InstalledApp("com.teamviewer.quicksupport.market", accessibility_service_enabled=True, running=True),
            "REMOTE_CONTROL_APP_ACTIVE",
            "TeamViewer QuickSupport holds the accessibility service",
        ),
        (
            InstalledApp("com.carriez.flutter_hbb", foreground=True, running=True),
            "REMOTE_CONTROL_APP_ACTIVE",
            "RustDesk is open on screen",
        ),
    ],
)
def test_remote_control_app(installed: InstalledApp, code: str, summary: str) -> None:
    findings = detect_remote_control(login(installed_apps=(InstalledApp("com.kakao.talk"), installed)), CATALOG)
    assert [(finding.code, finding.summary) for finding in findings] == [(code, summary)]
    assert findings[0].evidence["package_name"] == installed.package_name


def test_screen_sharing_and_remote_input_are_found_without_any_app() -> None:
    findings = detect_remote_control(login(screen=ScreenState(screen_sharing=True, remote_input=True)), CATALOG)
    assert {finding.code for finding in findings} == {"SCREEN_SHARED", "REMOTE_INPUT_ACTIVE"}


def test_several_remote_control_apps_are_reported_in_the_order_installed() -> None:
    apps = (
        InstalledApp("com.anydesk.anydeskandroid", running=True),
        InstalledApp("com.example.notes"),
        InstalledApp("com.teamviewer.quicksupport.market"),
    )
    findings = detect_remote_control(login(installed_apps=apps), CATALOG)
    assert [(finding.evidence["package_name"], finding.code) for finding in findings] == [
        ("com.anydesk.anydeskandroid", "REMOTE_CONTROL_APP_ACTIVE"),
        ("com.teamviewer.quicksupport.market", "REMOTE_CONTROL_APP_INSTALLED"),
    ]


def test_a_logins_package_names_follow_its_apps_through_replace() -> None:
    telemetry = login(installed_apps=(InstalledApp("com.a"), InstalledApp("com.b")))
    assert telemetry.package_names == {"com.a", "com.b"}
    changed = replace(telemetry, installed_apps=(InstalledApp("com.c"),))
    assert changed.package_names == {"com.c"}
    assert login().package_names == frozenset()


def test_unknown_apps_are_not_remote_control() -> None:
    assert (
        detect_remote_control(login(installed_apps=(InstalledApp("com.example.notes", running=True),)), CATALOG) == []
    )


def test_shipped_catalog_covers_the_products_banks_name() -> None:
    names = {app.name for app in CATALOG.by_package.values()}
    for product in ("TeamViewer QuickSupport", "AnyDesk", "RustDesk", "AirDroid", "RSUPPORT RemoteCall", "Mobizen"):
        assert product in names


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not toml [", "not valid TOML"),
        ("", r"at least one \[\[app\]\]"),
        ('[[app]]\npackage = "a.b"\nname = "A"\nvendor = "V"\n', "'source' must be a non-empty string"),
        (
            '[[app]]\npackage="a.b"\nname="A"\nvendor="V"\nsource="S"\n[[app]]\npackage="a.b"\nname="B"\nvendor="V"\nsource="S"\n',
            "listed twice",
        ),
    ],
)
def test_bad_catalogs_are_refused_with_the_entry_named(text: str, problem: str) -> None:
    with pytest.raises(CatalogError, match=problem):
        parse_catalog(text)


@pytest.mark.parametrize(("age_days", "when"), [(0, "today"), (1, "1 day ago"), (6.5, "6 days ago")])
def test_recent_phone_change(age_days: float, when: str) -> None:
    change = PhoneNumberChangeSummary(changed_at=NOW - age_days * 86400, kind="sim_swap", source="telco:kt")
    findings = detect_recent_phone_change(LoginContext(now=NOW, recent_phone_change=change))
    assert findings[0].summary == f"the customer's phone number was changed {when}"
    assert findings[0].evidence["kind"] == "sim_swap"
    assert detect_recent_phone_change(LoginContext(now=NOW)) == []
