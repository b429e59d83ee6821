"""Deterministic login traffic from a seed, serialized once so clients spend nothing on building it.

The mix follows what a bank sees: mostly clean logins by returning customers, some
new devices and far-away locations, remote-control apps (some running during a
call), and correlated sequences (a phone-number change, then a login from a new
device, then another login).  Each device holds 150-300 installed apps: most from
3,000 common apps, as every phone holds the same popular builds, and one to eight
that no other device has (the long tail).  A device keeps its apps from one login
to the next; now and then one more appears (a new install since the last login).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from gateway.generated.mtsg.v1 import event_service_pb2, telemetry_pb2, threat_signal_service_pb2

CHECK_LOGIN = "/mtsg.v1.ThreatSignalService/CheckLogin"
REPORT_PHONE_CHANGE = "/mtsg.v1.EventService/ReportPhoneNumberChange"
REMOTE_CONTROL_PACKAGES = (
    "com.teamviewer.quicksupport.market",
    "com.anydesk.anydeskandroid",
    "com.carriez.flutter_hbb",
    "com.rsupport.rs.activity.rsupport.aas2",
)
# Shares of the mix, by kind of operation sequence.
MIX = (
    ("clean", 0.69),
    ("new_device", 0.10),
    ("far_location", 0.05),
    ("remote_control", 0.08),
    ("malicious", 0.03),
    ("phone_change", 0.05),
)


# The workload injects these apps into its "malicious" logins; every registry the bench builds
# (``gateway.bench.registry``) lists them.
MALICIOUS_SEEDS = 50


def malicious_apk_sha256(index: int) -> str:
    return hashlib.sha256(f"mtsg-bench-malicious-{index}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    body: bytes


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


_PERMISSIONS = (
    "android.permission.CAMERA",
    "android.permission.READ_CONTACTS",
    "android.permission.RECORD_AUDIO",
    "android.permission.ACCESS_FINE_LOCATION",
    "android.permission.POST_NOTIFICATIONS",
)
# Apps a device holds that no other device has: 1 to 8, about 2% of its apps.
_LONG_TAIL = (1, 8)
# The share of logins from a known device that report an app installed since the last one.
_NEW_INSTALL_SHARE = 0.1


def _store_app(rng: random.Random, package_name: str, label: str) -> telemetry_pb2.InstalledApp:
    return telemetry_pb2.InstalledApp(
        package_name=package_name,
        label=label,
        version_name=f"{rng.randint(1, 20)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}",
        version_code=rng.randint(1, 10_000_000),
        installer_package="com.android.vending",
        installer_class=telemetry_pb2.INSTALLER_CLASS_OFFICIAL_STORE,
        apk_sha256=_hex(rng, 64),
        signing_cert_sha256=_hex(rng, 64),
        signing_cert_sha1=_hex(rng, 40),
        granted_permissions=rng.sample(_PERMISSIONS, k=rng.randint(0, 3)),
    )


def _app_universe(rng: random.Random, size: int = 3000) -> list[telemetry_pb2.InstalledApp]:
    return [_store_app(rng, f"com.vendor{index % 400}.app{index}", f"App {index}") for index in range(size)]


class Workload:
    """Operations for a population of customers, each with a usual device and place."""

    def __init__(self, seed: int, customers: int, now: float) -> None:
        self._seed = seed
        self._rng = random.Random(seed)
        self._now = now
        self._universe = _app_universe(self._rng)
        self._customers = customers
        self._counter = 0

    def _device_apps(self, device: str) -> list[telemetry_pb2.InstalledApp]:
        """The apps ``device`` holds: drawn from the seed and the device alone, so every client process
        and every login of the device report the same ones."""
        rng = random.Random(f"{self._seed}/{device}")
        count, tail = rng.randint(150, 300), rng.randint(*_LONG_TAIL)
        rare = [_store_app(rng, f"org.rare.{device}.app{n}", f"Rare {n}") for n in range(tail)]
        return rng.sample(self._universe, k=count - tail) + rare

    def _login(self, customer: int, device: str, *, lat: float, lon: float) -> telemetry_pb2.LoginTelemetry:
        rng = self._rng
        self._counter += 1
        apps = self._device_apps(device)
        if rng.random() < _NEW_INSTALL_SHARE:
            held = {app.package_name for app in apps}
            installed = next((app for app in rng.sample(self._universe, k=8) if app.package_name not in held), None)
            apps.extend([installed] if installed is not None else [])
        login = telemetry_pb2.LoginTelemetry(
            customer_id=f"bench-cust-{customer}",
            device_id=device,
            session_id=f"s{self._counter}",
            nonce=_hex(rng, 32),
            installed_apps=apps,
            location=telemetry_pb2.Location(latitude=lat, longitude=lon, accuracy_meters=30),
            client_ip=f"203.0.113.{rng.randint(1, 254)}",
        )
        login.collected_at.FromSeconds(int(self._now))
        return login

    def _request(self, login: telemetry_pb2.LoginTelemetry) -> Operation:
        self._counter += 1
        request = threat_signal_service_pb2.CheckLoginRequest(request_id=f"bench-{self._counter}", telemetry=login)
        return Operation(CHECK_LOGIN, request.SerializeToString())

    def sequence(self) -> list[Operation]:
        """One customer's next operations, drawn from the mix."""
        rng = self._rng
        customer = rng.randrange(self._customers)
        home = (37.4 + (customer % 100) / 500, 126.9 + (customer % 77) / 500)
        usual_device = f"bench-dev-{customer}"
        kind = rng.choices([name for name, _ in MIX], weights=[weight for _, weight in MIX])[0]
        if kind == "clean":
            return [self._request(self._login(customer, usual_device, lat=home[0], lon=home[1]))]
        if kind == "new_device":
            return [
                self._request(self._login(customer, f"bench-dev-{customer}-{self._counter}", lat=home[0], lon=home[1]))
            ]
        if kind == "far_location":
            return [self._request(self._login(customer, usual_device, lat=35.1, lon=129.0))]
        if kind == "malicious":
            login = self._login(customer, usual_device, lat=home[0], lon=home[1])
            digest = malicious_apk_sha256(rng.randrange(MALICIOUS_SEEDS))
            login.installed_apps.append(telemetry_pb2.InstalledApp(package_name="com.bench.phish", apk_sha256=digest))
            return [self._request(login)]
        if kind == "remote_control":
            login = self._login(customer, usual_device, lat=home[0], lon=home[1])
            running = rng.random() < 0.5
            login.installed_apps.append(
                telemetry_pb2.InstalledApp(package_name=rng.choice(REMOTE_CONTROL_PACKAGES), running=running)
            )
            login.call.active_call = running
            return [self._request(login)]
        change = event_service_pb2.PhoneNumberChange(
            event_id=f"bench-evt-{self._counter}",
            customer_id=f"bench-cust-{customer}",
            previous_phone_number=f"+8210{rng.randint(10_000_000, 99_999_999)}",
            new_phone_number=f"+8210{rng.randint(10_000_000, 99_999_999)}",
            source="bench",
        )
        change.changed_at.FromSeconds(int(self._now) - 3600)
        report = event_service_pb2.ReportPhoneNumberChangeRequest(changes=[change])
        new_device = f"bench-dev-{customer}-{self._counter}"
        return [
            Operation(REPORT_PHONE_CHANGE, report.SerializeToString()),
            self._request(self._login(customer, new_device, lat=home[0], lon=home[1])),
            self._request(self._login(customer, new_device, lat=home[0], lon=home[1])),
        ]

    def operations(self, count: int) -> list[Operation]:
        found: list[Operation] = []
        while len(found) < count:
            found.extend(self.sequence())
        return found[:count]
