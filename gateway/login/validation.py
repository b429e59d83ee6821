"""Checking requests at the edge and turning them into the brain's plain data.

Every client mistake becomes a FieldViolation naming the field by its path
("telemetry.installed_apps[3].apk_sha256"), and all of them are reported at once,
so an SDK developer fixes a request in one round trip.  The list is capped: error
details travel in gRPC trailers, which are small, and a request with 100,000 bad
apps must still get a readable answer.
"""

from __future__ import annotations

import ipaddress
import math
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Protocol

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from blocklists.hashes import (
    SHA1_HEX_LENGTH,
    SHA256_HEX_LENGTH,
    MalformedDigestError,
    normalize_hex_digest,
)
from gateway.config import Config
from gateway.generated.mtsg.v1 import event_service_pb2, telemetry_pb2, threat_signal_service_pb2
from gateway.login.held_inventories import with_activity
from gateway.login.inventory_claim import (
    PACKAGE_NAME,
    PACKAGE_NAME_RULE,
    InventoryClaim,
    app_activity,
    inventory_claim,
)
from gateway.privacy.phone_hash import PhoneNumberError, normalize_phone_number
from gateway.violations import (
    EARLIEST_TIME,
    REQUEST_ID,
    Violations,
    request_id_or_none,
)
from signals import telemetry as model

_COUNTRY_CODE = re.compile(r"[A-Z]{2}")
_INSTALLER_CLASSES = {
    telemetry_pb2.INSTALLER_CLASS_UNSPECIFIED: model.InstallerClass.UNKNOWN,
    telemetry_pb2.INSTALLER_CLASS_OFFICIAL_STORE: model.InstallerClass.OFFICIAL_STORE,
    telemetry_pb2.INSTALLER_CLASS_OEM_STORE: model.InstallerClass.OEM_STORE,
    telemetry_pb2.INSTALLER_CLASS_THIRD_PARTY_STORE: model.InstallerClass.THIRD_PARTY_STORE,
    telemetry_pb2.INSTALLER_CLASS_PACKAGE_INSTALLER: model.InstallerClass.PACKAGE_INSTALLER,
    telemetry_pb2.INSTALLER_CLASS_NONE: model.InstallerClass.NONE,
}
_LOCATION_SOURCES = {
    value.number: value.name.removeprefix("LOCATION_SOURCE_").lower()
    for value in telemetry_pb2.LocationSource.DESCRIPTOR.values
}
_CHANGE_KINDS = {
    value.number: value.name.removeprefix("PHONE_NUMBER_CHANGE_KIND_").lower()
    for value in event_service_pb2.PhoneNumberChangeKind.DESCRIPTOR.values
}


MIN_NONCE_LENGTH = 16


class AppConverter(Protocol):
    """Turns a login's apps, still in the bytes they arrived as, into checked apps (``checked_apps``)."""

    def convert(
        self, encoded: Sequence[bytes], latest: float, violations: Violations
    ) -> tuple[model.InstalledApp, ...]: ...


@dataclass(frozen=True, slots=True)
class Limits:
    max_installed_apps: int
    max_permissions_per_app: int
    max_clock_skew_seconds: int
    max_phone_changes_per_call: int
    # Telemetry older than this is refused (the replay window).
    max_telemetry_age_seconds: int = 300

    @classmethod
    def of(cls, config: Config) -> Limits:
        """The limits a configuration sets: the ``[limits]`` section and the login's replay window."""
        limits = config.limits
        return cls(
            max_installed_apps=limits.max_installed_apps,
            max_permissions_per_app=limits.max_permissions_per_app,
            max_clock_skew_seconds=limits.max_clock_skew_seconds,
            max_phone_changes_per_call=limits.max_phone_changes_per_call,
            max_telemetry_age_seconds=config.login.max_telemetry_age_seconds,
        )


# What _app_time answers for a timestamp the full path would refuse (no valid time is negative).
_REFUSED_TIME = -1.0


def _app_time(stamp: Timestamp, latest: float) -> float | None:
    """An app's optional timestamp as ``Violations.time`` would accept it (None: unset), else _REFUSED_TIME."""
    seconds, nanos = stamp.seconds, stamp.nanos
    if seconds == 0 and nanos == 0:
        return None
    if not 0 <= nanos <= 999_999_999:
        return _REFUSED_TIME
    value = seconds + nanos / 1e9
    return value if EARLIEST_TIME <= value <= latest else _REFUSED_TIME


# The InstalledApp fields the fast path reads, in one C-level call per app, in the order of
# model.InstalledApp's fields (version_name, checked but not kept, comes last).
_APP_FIELDS = operator.attrgetter(
    "package_name",
    "label",
    "installer_class",
    "installer_package",
    "apk_sha256",
    "signing_cert_sha256",
    "signing_cert_sha1",
    "system_app",
    "first_install_time",
    "last_update_time",
    "granted_permissions",
    "accessibility_service_enabled",
    "device_admin",
    "draw_over_apps",
    "running",
    "foreground",
    "version_name",
)
# A whole column of package names, one a line.
_PACKAGE_NAME_LINES = re.compile(r"(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}\n)*")
_LOWER_HEX_DIGITS = b"0123456789abcdef"


def clean_apps(
    apps: Sequence[telemetry_pb2.InstalledApp], limits: Limits, latest: float
) -> tuple[model.InstalledApp, ...] | None:
    """Every app, when all of them pass every check of the full path; None sends the login there.

    Nearly every login is clean, and checking it app by app, field by field, in Python was most of
    the gateway's cost.  Here each field is read once (one attrgetter call per app) and
    each check runs over a whole column in a few C-level calls (a regex over the joined column, a
    set, ``str.isprintable``).  Anything unusual takes the full path, which names each problem; a
    property test holds the two paths to the same answers.
    """
    if not apps:
        return ()
    (
        names,
        labels,
        installer_codes,
        installer_packages,
        apks,
        certificates,
        certificates_sha1,
        system_apps,
        first_installs,
        last_updates,
        permission_lists,
        accessibility,
        device_admin,
        draw_over_apps,
        running,
        foreground,
        version_names,
    ) = zip(*map(_APP_FIELDS, apps), strict=True)
    permissions = list(map(tuple, permission_lists))
    granted = list(chain.from_iterable(permissions))
    if not (
        len(set(names)) == len(names)
        and _every_line_matches(_PACKAGE_NAME_LINES, names)
        and _INSTALLER_CLASSES.keys() >= set(installer_codes)
        and max(map(len, permissions)) <= limits.max_permissions_per_app
        and all(granted)
        and _clean_texts(granted, 255)
        and _clean_texts(labels, 256)
        and _clean_texts(version_names, 128)
        and _clean_texts(installer_packages, 255)
    ):
        return None
    apk_digests = _digest_column(apks, SHA256_HEX_LENGTH)
    certificate_digests = _digest_column(certificates, SHA256_HEX_LENGTH)
    certificate_sha1_digests = _digest_column(certificates_sha1, SHA1_HEX_LENGTH)
    times = (
        list(map(_app_time, first_installs, repeat(latest))),
        list(map(_app_time, last_updates, repeat(latest))),
    )
    if (
        apk_digests is None
        or certificate_digests is None
        or certificate_sha1_digests is None
        or any(_REFUSED_TIME in column for column in times)
    ):
        return None
    return tuple(
        map(
            model.InstalledApp,
            names,
            labels,
            map(_INSTALLER_CLASSES.__getitem__, installer_codes),
            installer_packages,
            apk_digests,
            certificate_digests,
            certificate_sha1_digests,
            system_apps,
            *times,
            permissions,
            accessibility,
            device_admin,
            draw_over_apps,
            running,
            foreground,
        )
    )


def _every_line_matches(lines: re.Pattern[str], values: Sequence[str]) -> bool:
    """Each value matches ``lines``' one-line pattern: one regex over the column joined by newlines.

    The count keeps a value that itself holds a newline from passing as two good lines.
    """
    joined = "\n".join(values) + "\n"
    return joined.count("\n") == len(values) and lines.fullmatch(joined) is not None


def _digest_column(values: Sequence[str], length: int) -> Sequence[str] | None:
    """The column as canonical digests (most SDKs send them so already), or None if one is malformed.

    Canonical: every value empty or ``length`` characters, and nothing but lower-case hex digits in
    all of them together: deleting those bytes leaves nothing (a table lookup a byte, ten times
    faster than a regex or a set over the column's characters).
    """
    if set(map(len, values)) <= {0, length} and not "".join(values).encode().translate(None, _LOWER_HEX_DIGITS):
        return values
    try:
        return [normalize_hex_digest(value, length=length) if value else "" for value in values]
    except MalformedDigestError:
        return None


def _clean_texts(values: Sequence[str], max_length: int) -> bool:
    """Every value passes ``_clean_text``: the same rule, checked over the whole column at once.

    A control character anywhere makes the joined text unprintable.  Once all of it is printable
    the only whitespace left is the plain space (a test walks every code point), so a value with
    surrounding whitespace shows as a space beside a newline in the column joined by newlines.
    """
    if not values:
        return True
    if max(map(len, values)) > max_length or not "".join(values).isprintable():
        return False
    lines = "\n" + "\n".join(values) + "\n"
    return "\n " not in lines and " \n" not in lines


def _app_model(
    app: telemetry_pb2.InstalledApp,
    installer_class: model.InstallerClass,
    digests: tuple[str, str, str],
    times: tuple[float | None, float | None],
    permissions: tuple[str, ...],
) -> model.InstalledApp:
    """The brain's view of an app, from its checked values and the flags that need no check."""
    apk, certificate, certificate_sha1 = digests
    return model.InstalledApp(
        package_name=app.package_name,
        label=app.label,
        installer_class=installer_class,
        installer_package=app.installer_package,
        apk_sha256=apk,
        signing_cert_sha256=certificate,
        signing_cert_sha1=certificate_sha1,
        system_app=app.system_app,
        first_install_time=times[0],
        last_update_time=times[1],
        granted_permissions=permissions,
        accessibility_service_enabled=app.accessibility_service_enabled,
        device_admin=app.device_admin,
        draw_over_apps=app.draw_over_apps,
        running=app.running,
        foreground=app.foreground,
    )


def check_apps(
    apps: Sequence[telemetry_pb2.InstalledApp], limits: Limits, latest: float, v: Violations
) -> tuple[model.InstalledApp, ...]:
    """The apps converted: by the fast path when they are all clean, else app by app with each problem in ``v``."""
    clean = clean_apps(apps, limits, latest)
    if clean is not None:
        return clean
    seen: dict[str, int] = {}
    return tuple(_checked_app(index, app, seen, limits, latest, v) for index, app in enumerate(apps))


def _checked_app(
    index: int,
    app: telemetry_pb2.InstalledApp,
    seen: dict[str, int],
    limits: Limits,
    latest: float,
    v: Violations,
) -> model.InstalledApp:
    """The full path: every check with the field's path, each problem added to ``v``."""
    path = f"telemetry.installed_apps[{index}]"
    name = app.package_name
    if not name:
        v.add(f"{path}.package_name", "is required")
    elif not PACKAGE_NAME.fullmatch(name):
        v.add(f"{path}.package_name", PACKAGE_NAME_RULE)
    elif name in seen:
        v.add(f"{path}.package_name", f"duplicates installed_apps[{seen[name]}] ({name})")
    else:
        seen[name] = index
    v.enum(f"{path}.installer_class", app.installer_class, _INSTALLER_CLASSES)
    if len(app.granted_permissions) > limits.max_permissions_per_app:
        v.add(
            f"{path}.granted_permissions",
            f"at most {limits.max_permissions_per_app} permissions, got {len(app.granted_permissions)}",
        )
    for position, permission in enumerate(app.granted_permissions[: limits.max_permissions_per_app]):
        v.text(f"{path}.granted_permissions[{position}]", permission, max_length=255, required=True)
    v.text(f"{path}.label", app.label, max_length=256)
    v.text(f"{path}.version_name", app.version_name, max_length=128)
    v.text(f"{path}.installer_package", app.installer_package, max_length=255)
    digests = (
        v.digest(f"{path}.apk_sha256", app.apk_sha256, length=SHA256_HEX_LENGTH),
        v.digest(f"{path}.signing_cert_sha256", app.signing_cert_sha256, length=SHA256_HEX_LENGTH),
        v.digest(f"{path}.signing_cert_sha1", app.signing_cert_sha1, length=SHA1_HEX_LENGTH),
    )
    times = (
        v.time(f"{path}.first_install_time", app.first_install_time, latest=latest),
        v.time(f"{path}.last_update_time", app.last_update_time, latest=latest),
    )
    installer_class = _INSTALLER_CLASSES.get(app.installer_class, model.InstallerClass.UNKNOWN)
    return _app_model(app, installer_class, digests, times, tuple(app.granted_permissions))


def _location(telemetry: telemetry_pb2.LoginTelemetry, v: Violations) -> model.Location | None:
    if not telemetry.HasField("location"):
        return None
    location = telemetry.location
    checks = (
        ("latitude", location.latitude, -90.0, 90.0),
        ("longitude", location.longitude, -180.0, 180.0),
        ("accuracy_meters", location.accuracy_meters, 0.0, 20_000_000.0),
    )
    for name, value, low, high in checks:
        if not math.isfinite(value) or not low <= value <= high:
            v.add(f"telemetry.location.{name}", f"must be a number from {low:g} to {high:g}, got {value!r}")
    v.enum("telemetry.location.source", location.source, _LOCATION_SOURCES)
    country = location.country_code
    if country and not _COUNTRY_CODE.fullmatch(country):
        v.add("telemetry.location.country_code", f"must be an ISO 3166-1 alpha-2 code such as KR, got {country[:8]!r}")
    return model.Location(
        latitude=location.latitude,
        longitude=location.longitude,
        accuracy_meters=location.accuracy_meters,
        source=_LOCATION_SOURCES.get(location.source, "unknown"),
        country_code=country,
    )


def _attestation(telemetry: telemetry_pb2.LoginTelemetry, v: Violations) -> model.Attestation | None:
    """The attestation summary when the app sent one; its provider names it, so one is required."""
    if not telemetry.HasField("attestation"):
        return None
    attestation = telemetry.attestation
    v.text("telemetry.attestation.provider", attestation.provider, max_length=64, required=True)
    return model.Attestation(
        provider=attestation.provider,
        meets_basic_integrity=attestation.meets_basic_integrity,
        meets_device_integrity=attestation.meets_device_integrity,
        meets_strong_integrity=attestation.meets_strong_integrity,
        app_recognized=attestation.app_recognized,
    )


@dataclass(frozen=True, slots=True)
class ParsedLogin:
    """A valid CheckLoginRequest: its idempotency key, its telemetry, and its inventory claim."""

    request_id: str | None
    telemetry: model.LoginTelemetry
    # Set when the login sent an inventory_digest; its apps are then still to be found when it sent
    # the digest alone (``telemetry.installed_apps`` is empty until the service fills it).
    inventory: InventoryClaim | None = None


def parse_check_login(
    request: threat_signal_service_pb2.CheckLoginRequest | Message,
    limits: Limits,
    now: float,
    checked_apps: AppConverter | None = None,
) -> ParsedLogin:
    """Validate a CheckLoginRequest, or raise InvalidRequestError naming every bad field.

    With ``checked_apps``, ``request`` is the wire form (``gateway.login.wire``): its apps are bytes,
    and the apps checked at earlier logins are taken from ``checked_apps`` as they are.
    """
    v = Violations()
    request_id = request_id_or_none("request_id", request.request_id, v)
    if not request.HasField("telemetry"):
        v.add("telemetry", "is required")
        v.raise_if_any()
    t = request.telemetry
    latest = now + limits.max_clock_skew_seconds
    v.text("telemetry.customer_id", t.customer_id, max_length=128, required=True)
    v.text("telemetry.device_id", t.device_id, max_length=128, required=True)
    v.text("telemetry.session_id", t.session_id, max_length=128)
    v.text("telemetry.nonce", t.nonce, max_length=128, required=True)
    if t.nonce and len(t.nonce) < MIN_NONCE_LENGTH:
        v.add("telemetry.nonce", f"must be at least {MIN_NONCE_LENGTH} characters of fresh randomness per login")
    collected_at = v.time(
        "telemetry.collected_at",
        t.collected_at,
        latest=latest,
        required=True,
        earliest=now - limits.max_telemetry_age_seconds,
    )
    v.enum("telemetry.device.platform", t.device.platform, {p.number for p in telemetry_pb2.Platform.DESCRIPTOR.values})
    # Read by no detector today, but every string a caller sends is bounded: a field without a limit is a
    # megabyte the gateway decodes and holds for nothing.
    v.text("telemetry.device.os_version", t.device.os_version, max_length=64)
    v.text("telemetry.device.manufacturer", t.device.manufacturer, max_length=128)
    v.text("telemetry.device.model", t.device.model, max_length=128)
    v.text("telemetry.bank_app.package_name", t.bank_app.package_name, max_length=255)
    v.text("telemetry.bank_app.version_name", t.bank_app.version_name, max_length=128)
    v.text("telemetry.bank_app.installer_package", t.bank_app.installer_package, max_length=255)
    v.digest("telemetry.bank_app.signing_cert_sha256", t.bank_app.signing_cert_sha256, length=SHA256_HEX_LENGTH)
    v.enum("telemetry.bank_app.installer_class", t.bank_app.installer_class, _INSTALLER_CLASSES)
    if t.client_ip:
        try:
            ipaddress.ip_address(t.client_ip)
        except ValueError:
            v.add("telemetry.client_ip", "must be an IPv4 or IPv6 address")
    v.text("telemetry.network.carrier", t.network.carrier, max_length=128)

    apps: tuple[model.InstalledApp, ...] = ()
    if len(t.installed_apps) > limits.max_installed_apps:
        v.add(
            "telemetry.installed_apps",
            f"at most {limits.max_installed_apps} apps per login, got {len(t.installed_apps)}",
        )
    elif checked_apps is not None:
        apps = checked_apps.convert(t.installed_apps, latest, v)
    else:
        apps = check_apps(t.installed_apps, limits, latest, v)

    running, foreground = app_activity(t, limits.max_installed_apps, v)
    claim = inventory_claim(t, running, foreground, v)
    if running or foreground:
        apps = with_activity(apps, {app.package_name: index for index, app in enumerate(apps)}, running, foreground)
    call_started = v.time("telemetry.call.started_at", t.call.started_at, latest=latest)
    location = _location(t, v)
    attestation = _attestation(t, v)
    v.raise_if_any()
    assert collected_at is not None  # required above
    return ParsedLogin(request_id, _telemetry(t, collected_at, apps, call_started, location, attestation), claim)


def _telemetry(
    t: telemetry_pb2.LoginTelemetry,
    collected_at: float,
    apps: tuple[model.InstalledApp, ...],
    call_started: float | None,
    location: model.Location | None,
    attestation: model.Attestation | None,
) -> model.LoginTelemetry:
    """The brain's view of checked telemetry."""
    integrity = t.integrity
    return model.LoginTelemetry(
        customer_id=t.customer_id,
        device_id=t.device_id,
        collected_at=collected_at,
        session_id=t.session_id,
        integrity=model.DeviceIntegrity(
            rooted=integrity.rooted,
            emulator=integrity.emulator,
            hooking_framework=integrity.hooking_framework,
            debugger_attached=integrity.debugger_attached,
            developer_mode=integrity.developer_mode,
            adb_enabled=integrity.adb_enabled,
            app_tampered=integrity.app_tampered,
            untrusted_installer=integrity.untrusted_installer,
            mock_location=integrity.mock_location,
        ),
        installed_apps=apps,
        screen=model.ScreenState(
            screen_sharing=t.screen.screen_sharing,
            screen_recording=t.screen.screen_recording,
            remote_input=t.screen.remote_input,
        ),
        call=model.CallState(
            active_call=t.call.active_call,
            started_at=call_started,
            caller_in_contacts=t.call.caller_in_contacts if t.call.HasField("caller_in_contacts") else None,
        ),
        location=location,
        client_ip=t.client_ip,
        vpn_active=t.network.vpn_active,
        sim_changed=t.network.sim_changed,
        attestation=attestation,
    )


@dataclass(frozen=True, slots=True)
class PhoneChange:
    """A validated phone-number change; numbers normalised to E.164, not yet hashed."""

    event_id: str
    customer_id: str
    previous_number: str
    new_number: str
    changed_at: float
    kind: str
    source: str


def parse_phone_changes(
    request: event_service_pb2.ReportPhoneNumberChangeRequest, limits: Limits, now: float
) -> list[PhoneChange]:
    """Validate a batch; raise InvalidRequestError naming every bad field, or return the changes."""
    v = Violations()
    request_id_or_none("request_id", request.request_id, v)
    count = len(request.changes)
    if count == 0:
        v.add("changes", "at least one change is required")
    elif count > limits.max_phone_changes_per_call:
        v.add("changes", f"at most {limits.max_phone_changes_per_call} changes per call, got {count}")
    v.raise_if_any()

    parsed: list[PhoneChange] = []
    seen: dict[str, int] = {}
    latest = now + limits.max_clock_skew_seconds
    for index, change in enumerate(request.changes):
        path = f"changes[{index}]"
        if not change.event_id:
            v.add(f"{path}.event_id", "is required")
        elif not REQUEST_ID.fullmatch(change.event_id):
            v.add(f"{path}.event_id", "must be 1 to 128 characters of A-Z a-z 0-9 . _ : -")
        elif change.event_id in seen:
            v.add(f"{path}.event_id", f"duplicates changes[{seen[change.event_id]}] in the same batch")
        else:
            seen[change.event_id] = index
        v.text(f"{path}.customer_id", change.customer_id, max_length=128, required=True)
        v.text(f"{path}.source", change.source, max_length=128)
        v.enum(f"{path}.kind", change.kind, _CHANGE_KINDS)
        numbers: list[str] = []
        for name in ("previous_phone_number", "new_phone_number"):
            raw = getattr(change, name)
            if not raw:
                v.add(f"{path}.{name}", "is required")
                continue
            try:
                numbers.append(normalize_phone_number(raw))
            except PhoneNumberError as error:
                v.add(f"{path}.{name}", str(error))
        changed_at = v.time(f"{path}.changed_at", change.changed_at, latest=latest, required=True)
        if len(numbers) == 2 and changed_at is not None:
            parsed.append(
                PhoneChange(
                    event_id=change.event_id,
                    customer_id=change.customer_id,
                    previous_number=numbers[0],
                    new_number=numbers[1],
                    changed_at=changed_at,
                    kind=_CHANGE_KINDS.get(change.kind, "unspecified"),
                    source=change.source or "unspecified",
                )
            )
    v.raise_if_any()
    return parsed
