"""Detectors that compare a login with history or read app risk: boundaries of every floor."""

from __future__ import annotations

import pytest

from signals.context import DeviceInventory, LoginContext, PastLocation
from signals.detector_settings import DetectorSettings
from signals.detectors.device_integrity import ATTESTATION_FAILED, detect_device_integrity
from signals.detectors.location import (
    IMPOSSIBLE_TRAVEL,
    NEW_COUNTRY,
    UNUSUAL_LOCATION,
    VPN_ACTIVE,
    detect_location,
    distance_km,
)
from signals.detectors.shared_device import detect_shared_device
from signals.detectors.sideloaded_app import detect_sideloaded_apps
from signals.detectors.split_install import (
    APPS_INSTALLED_SINCE_LAST_LOGIN,
    SIDELOADED_APP_INSTALLED_SINCE_LAST_LOGIN,
    detect_split_install,
)
from signals.findings import Severity
from signals.inventory import pack_inventory, unpack_inventory
from signals.telemetry import Attestation, InstalledApp, InstallerClass, Location, LoginTelemetry

NOW = 1_800_000_000.0
SETTINGS = DetectorSettings()
SEOUL = (37.5665, 126.9780)
BUSAN = (35.1796, 129.0756)  # about 325 km from Seoul
TOKYO = (35.6762, 139.6503)  # about 1,150 km from Seoul


def login(**fields: object) -> LoginTelemetry:
    return LoginTelemetry(customer_id="c1", device_id="d1", collected_at=NOW, **fields)  # type: ignore[arg-type]


def sideloaded(package: str, *permissions: str, **flags: object) -> InstalledApp:
    return InstalledApp(
        package,
        label=package.rsplit(".", 1)[-1],
        installer_class=InstallerClass.PACKAGE_INSTALLER,
        granted_permissions=permissions,
        **flags,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        (sideloaded("x.loader"), None),  # sideloaded but harmless
        (sideloaded("x.overlay", "android.permission.SYSTEM_ALERT_WINDOW"), (Severity.MEDIUM, "overlay")),
        (sideloaded("x.sms", "android.permission.RECEIVE_SMS"), (Severity.HIGH, "sms")),
        (sideloaded("x.short", "READ_SMS"), (Severity.HIGH, "sms")),  # short permission names too
        (sideloaded("x.a11y", accessibility_service_enabled=True), (Severity.HIGH, "accessibility")),
        (
            sideloaded("x.all", "CALL_PHONE", "BIND_NOTIFICATION_LISTENER_SERVICE", device_admin=True),
            (Severity.HIGH, "call_control, device_admin, notification_access"),
        ),
        (
            InstalledApp("x.store", installer_class=InstallerClass.OFFICIAL_STORE, granted_permissions=("READ_SMS",)),
            None,
        ),
        (InstalledApp("x.unknown", granted_permissions=("READ_SMS",)), None),  # installer not reported
        (
            InstalledApp(
                "x.system", installer_class=InstallerClass.NONE, system_app=True, granted_permissions=("READ_SMS",)
            ),
            None,
        ),
        (
            InstalledApp("x.adb", installer_class=InstallerClass.NONE, granted_permissions=("CALL_PHONE",)),
            (Severity.HIGH, "call_control"),
        ),
    ],
)
def test_sideloaded_risky_app(app: InstalledApp, expected: tuple[Severity, str] | None) -> None:
    findings = detect_sideloaded_apps(login(installed_apps=(app,)))
    if expected is None:
        assert findings == []
        return
    (finding,) = findings
    assert (finding.severity, finding.evidence["capabilities"]) == expected
    assert finding.evidence["capability_count"] == str(len(expected[1].split(", ")))
    assert "outside an official store" in finding.summary


def test_sideloaded_apps_are_picked_out_of_a_full_login_in_install_order() -> None:
    """Every installer, system app or not, among many: the findings name exactly the sideloaded ones."""
    apps = tuple(
        InstalledApp(
            f"x.app{number}.{installer.value}.{system}",
            installer_class=installer,
            system_app=system,
            granted_permissions=("READ_SMS",),
        )
        for number in range(20)
        for installer in InstallerClass
        for system in (number % 3 == 0, number % 3 != 0)
    )
    outside = {InstallerClass.PACKAGE_INSTALLER, InstallerClass.NONE, InstallerClass.THIRD_PARTY_STORE}
    expected = [app.package_name for app in apps if app.installer_class in outside and not app.system_app]
    findings = detect_sideloaded_apps(login(installed_apps=apps))
    assert [finding.evidence["package"] for finding in findings] == expected
    assert len(expected) == 60


def _previous(*packages: str, hours_ago: float = 5) -> DeviceInventory:
    return DeviceInventory(NOW - hours_ago * 3600, frozenset(packages))


def test_split_install_needs_a_previous_inventory() -> None:
    apps = (sideloaded("x.sms", "READ_SMS"),)
    assert detect_split_install(login(installed_apps=apps), LoginContext(now=NOW)) == []


def test_split_install_reports_new_apps_and_singles_out_the_sideloaded_ones() -> None:
    apps = (
        InstalledApp("com.kakao.talk", installer_class=InstallerClass.OFFICIAL_STORE),
        InstalledApp("com.new.game", label="Game", installer_class=InstallerClass.OFFICIAL_STORE),
        sideloaded("x.loader"),
        sideloaded("x.sms", "READ_SMS"),
    )
    context = LoginContext(now=NOW, previous_inventory=_previous("com.kakao.talk", hours_ago=5.5))
    findings = {
        (f.code, f.evidence.get("package", "")): f for f in detect_split_install(login(installed_apps=apps), context)
    }
    summary = findings[(APPS_INSTALLED_SINCE_LAST_LOGIN, "")]
    assert summary.evidence["new_apps"] == "3"
    assert summary.evidence["hours_since_last_login"] == "5"
    assert findings[(SIDELOADED_APP_INSTALLED_SINCE_LAST_LOGIN, "x.loader")].severity is Severity.MEDIUM
    risky = findings[(SIDELOADED_APP_INSTALLED_SINCE_LAST_LOGIN, "x.sms")]
    assert risky.severity is Severity.HIGH
    assert risky.summary == "sms was sideloaded since the last login and can use SMS"
    assert len(findings) == 3


def test_split_install_is_quiet_when_nothing_is_new() -> None:
    apps = (sideloaded("x.sms", "READ_SMS"),)
    context = LoginContext(now=NOW, previous_inventory=_previous("x.sms", "gone.app"))
    assert detect_split_install(login(installed_apps=apps), context) == []


def test_inventory_round_trip_is_compact_and_a_damaged_blob_counts_as_unseen() -> None:
    names = [f"com.vendor{i % 40}.app{i}" for i in range(250)]
    packed = pack_inventory([*names, names[0]])
    assert unpack_inventory(packed) == frozenset(names)
    assert len(packed) < 1500
    assert unpack_inventory(pack_inventory([])) == frozenset()
    assert unpack_inventory(packed[:-5]) is None
    assert unpack_inventory(b"not zlib") is None


@pytest.mark.parametrize(
    ("others", "severity"), [(0, None), (1, None), (2, Severity.MEDIUM), (3, Severity.MEDIUM), (4, Severity.HIGH)]
)
def test_shared_device_floor(others: int, severity: Severity | None) -> None:
    findings = detect_shared_device(LoginContext(now=NOW, other_customers_on_device=others), SETTINGS)
    assert [f.severity for f in findings] == ([severity] if severity else [])
    if findings:
        assert findings[0].evidence["other_customers"] == str(others)


def test_distance_is_haversine() -> None:
    assert distance_km(*SEOUL, *SEOUL) == 0
    assert 320 < distance_km(*SEOUL, *BUSAN) < 330
    assert 1140 < distance_km(*SEOUL, *TOKYO) < 1160
    assert 20_000 < distance_km(0, 0, 0, 180) < 20_040


def _at(place: tuple[float, float], country: str = "KR", accuracy: float = 0.0) -> Location:
    return Location(place[0], place[1], accuracy_meters=accuracy, country_code=country)


def _past(place: tuple[float, float], hours_ago: float, country: str = "KR") -> PastLocation:
    return PastLocation(NOW - hours_ago * 3600, place[0], place[1], 0.0, country)


def _codes(
    here: Location | None, *past: PastLocation, vpn: bool = False, settings: DetectorSettings = SETTINGS
) -> dict[str, dict[str, str]]:
    findings = detect_location(
        login(location=here, vpn_active=vpn), LoginContext(now=NOW, recent_locations=past), settings
    )
    return {finding.code: dict(finding.evidence) for finding in findings}


def test_location_near_home_is_quiet() -> None:
    assert _codes(_at(SEOUL), _past(SEOUL, 24)) == {}


def test_no_history_means_no_location_finding() -> None:
    assert _codes(_at(TOKYO, "JP")) == {}


def test_unusual_location_at_the_floor() -> None:
    # Busan is ~325 km from Seoul: unusual at a 300 km floor, not at 330 km.
    assert UNUSUAL_LOCATION in _codes(_at(BUSAN), _past(SEOUL, 48))
    assert UNUSUAL_LOCATION not in _codes(
        _at(BUSAN), _past(SEOUL, 48), settings=DetectorSettings(unusual_location_km=330)
    )
    # Near any one recent place is enough.
    assert UNUSUAL_LOCATION not in _codes(_at(BUSAN), _past(SEOUL, 48), _past(BUSAN, 200))


def test_accuracy_is_taken_off_the_distance() -> None:
    coarse = _at(BUSAN, accuracy=50_000)  # a 50 km IP-based fix
    assert UNUSUAL_LOCATION not in _codes(coarse, _past(SEOUL, 48))


def test_impossible_travel_boundaries() -> None:
    # Seoul -> Tokyo (~1,150 km) in one hour is ~1,150 km/h: impossible; in two hours ~575 km/h: possible.
    fast = _codes(_at(TOKYO, "JP"), _past(SEOUL, 1))
    assert IMPOSSIBLE_TRAVEL in fast and 1100 < float(fast[IMPOSSIBLE_TRAVEL]["speed_kmh"]) < 1200
    assert IMPOSSIBLE_TRAVEL not in _codes(_at(TOKYO, "JP"), _past(SEOUL, 2))
    # Short hops are never judged on speed.
    near = (SEOUL[0] + 0.5, SEOUL[1])  # ~55 km
    assert IMPOSSIBLE_TRAVEL not in _codes(_at(near), _past(SEOUL, 0.01))


def test_new_country_and_vpn() -> None:
    found = _codes(_at(TOKYO, "JP"), _past(SEOUL, 300), vpn=True)
    assert found[NEW_COUNTRY]["country"] == "JP"
    assert VPN_ACTIVE in found
    assert NEW_COUNTRY not in _codes(_at(TOKYO, ""), _past(SEOUL, 300))  # country unknown
    assert NEW_COUNTRY not in _codes(_at(TOKYO, "JP"), _past(SEOUL, 300, country=""))  # no known country
    assert _codes(None, _past(SEOUL, 1), vpn=True).keys() == {VPN_ACTIVE}


@pytest.mark.parametrize(
    ("attestation", "severity", "failed"),
    [
        (Attestation("play", True, True, True, True), None, ""),
        (Attestation("play", True, False, False, True), Severity.MEDIUM, "device_integrity"),
        (Attestation("play", False, False, False, True), Severity.HIGH, "basic_integrity, device_integrity"),
        (Attestation("play", True, True, False, False), Severity.HIGH, "app_recognized"),
    ],
)
def test_attestation(attestation: Attestation, severity: Severity | None, failed: str) -> None:
    findings = [f for f in detect_device_integrity(login(attestation=attestation)) if f.code == ATTESTATION_FAILED]
    assert [(f.severity, f.evidence["failed"]) for f in findings] == ([(severity, failed)] if severity else [])
