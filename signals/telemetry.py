"""Plain-data view of one login's telemetry, as the detectors read it.

The gateway converts the protobuf request into these frozen values after
validating it, so the brain never depends on grpc or protobuf.  Times are seconds
since the Unix epoch.  Digests are already normalised to lower-case hex.
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field
from enum import Enum
from operator import attrgetter
from typing import NamedTuple

from blocklists.matcher import Screening


class InstallerClass(Enum):
    """Where an app came from; sideloaded and adb installs are the risky ones."""

    UNKNOWN = "unknown"
    OFFICIAL_STORE = "official_store"
    OEM_STORE = "oem_store"
    THIRD_PARTY_STORE = "third_party_store"
    PACKAGE_INSTALLER = "package_installer"
    NONE = "none"


class InstalledApp(NamedTuple):
    """One installed app.  A named tuple, not a frozen dataclass: a login carries hundreds, and a
    frozen dataclass's constructor (one ``object.__setattr__`` per field) costs more per app, and
    that cost is paid hundreds of times a login.  Equally immutable and read by attribute."""

    package_name: str
    label: str = ""
    installer_class: InstallerClass = InstallerClass.UNKNOWN
    installer_package: str = ""
    apk_sha256: str = ""
    signing_cert_sha256: str = ""
    signing_cert_sha1: str = ""
    system_app: bool = False
    first_install_time: float | None = None
    last_update_time: float | None = None
    granted_permissions: tuple[str, ...] = ()
    accessibility_service_enabled: bool = False
    device_admin: bool = False
    draw_over_apps: bool = False
    running: bool = False
    foreground: bool = False
    # The size of the app as it arrived, when the gateway keeps this very object for the logins that
    # report the same app again; 0 for an app made for one login. Only kept apps are worth remembering
    # by identity, and their size is what bounds the memory that remembering them takes.
    kept_bytes: int = 0


_PACKAGE_NAME = attrgetter("package_name")


@dataclass(frozen=True, slots=True)
class DeviceIntegrity:
    rooted: bool = False
    emulator: bool = False
    hooking_framework: bool = False
    debugger_attached: bool = False
    developer_mode: bool = False
    adb_enabled: bool = False
    app_tampered: bool = False
    untrusted_installer: bool = False
    mock_location: bool = False


@dataclass(frozen=True, slots=True)
class ScreenState:
    screen_sharing: bool = False
    screen_recording: bool = False
    remote_input: bool = False


@dataclass(frozen=True, slots=True)
class CallState:
    active_call: bool = False
    started_at: float | None = None
    caller_in_contacts: bool | None = None


@dataclass(frozen=True, slots=True)
class Location:
    latitude: float
    longitude: float
    accuracy_meters: float = 0.0
    source: str = "unknown"
    # ISO 3166-1 alpha-2, upper case; empty when the SDK or the bank's edge could not tell.
    country_code: str = ""


@dataclass(frozen=True, slots=True)
class Attestation:
    """A Play-Integrity-style verdict the bank's backend obtained for this device and app."""

    provider: str = ""
    meets_basic_integrity: bool = False
    meets_device_integrity: bool = False
    meets_strong_integrity: bool = False
    app_recognized: bool = False


@dataclass(frozen=True, slots=True)
class LoginTelemetry:
    customer_id: str
    device_id: str
    collected_at: float
    session_id: str = ""
    integrity: DeviceIntegrity = field(default_factory=DeviceIntegrity)
    installed_apps: tuple[InstalledApp, ...] = ()
    screen: ScreenState = field(default_factory=ScreenState)
    call: CallState = field(default_factory=CallState)
    location: Location | None = None
    client_ip: str = ""
    vpn_active: bool = False
    sim_changed: bool = False
    attestation: Attestation | None = None
    # Derived from installed_apps, once per login: the detectors that ask whether any app is in a
    # catalogue or new since the last login intersect sets in C instead of each walking ~230 apps
    # in Python.  Validation has refused duplicate package names.
    package_names: frozenset[str] = field(init=False, repr=False, compare=False)
    # For an app list the gateway holds from login to login: which of its apps hold a key in the
    # registry, screened once per registry version instead of at every login (blocklists.matcher).
    screening: Screening | None = field(default=None, repr=False, compare=False)
    # The package names when the caller already has them (a held list); derived otherwise.
    known_package_names: InitVar[frozenset[str] | None] = None

    def __post_init__(self, known_package_names: frozenset[str] | None) -> None:
        names = known_package_names
        if names is None:
            names = frozenset(map(_PACKAGE_NAME, self.installed_apps))
        object.__setattr__(self, "package_names", names)
