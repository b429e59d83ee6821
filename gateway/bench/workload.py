"""Deterministic login traffic from a seed, serialized once so clients spend nothing on building it.

The mix follows what a bank sees: mostly clean logins by returning customers, some
new devices and far-away locations, remote-control apps (some running during a
call), and correlated sequences (a phone-number change, then a login from a new
device, then another login).  Each device holds 150-300 installed apps: most from
3,000 common apps, as every phone holds the same popular builds, and one to eight
that no other device has (the long tail).  Like a real phone, each device reports those
builds with its own install and update times and its own grants, so no two devices send
one app's bytes alike; a few apps run at each login, a different few each time; and a few
percent of a device's logins find an app installed, updated or removed since the last.

By default the logins are sent as an SDK that uses inventory digests sends them
(``gateway.client.check_login_by_digest``): each login is built in both forms, with its list and
digest, and with the digest alone, and the client picks one as the SDK would.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from gateway.client import with_inventory_digest
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
class DigestForm:
    """A login as an SDK using inventory digests may send it: ``short`` carries the digest alone."""

    device_id: str
    digest: str
    short: bytes


@dataclass(frozen=True, slots=True)
class Operation:
    """One call a client sends; a login comes as the device's next logins, one per round of the pool."""

    method: str
    body: bytes
    # The same device's later logins (what runs has changed, now and then its inventory), sent in the
    # pool's later rounds in turn, so a login sent again is not the same bytes again.
    later: tuple[bytes, ...] = ()
    # With inventory digests, each body's digest-only form (the body itself carries list and digest).
    digest_forms: tuple[DigestForm, ...] = ()
    # A first login of a new device: its later rounds are first logins of other new devices, so the
    # share of first logins stays what the mix says however many rounds a run sends.
    fresh_device: bool = False

    def in_round(self, round_number: int) -> bytes:
        """The body to send in the pool's ``round_number``-th round (0 first)."""
        bodies = (self.body, *self.later)
        return bodies[round_number % len(bodies)]

    def digest_form(self, round_number: int) -> DigestForm | None:
        """The digest-only form of ``in_round(round_number)``; None without inventory digests."""
        forms = self.digest_forms
        return forms[round_number % len(forms)] if forms else None


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


_PERMISSIONS = (
    "android.permission.CAMERA",
    "android.permission.READ_CONTACTS",
    "android.permission.RECORD_AUDIO",
    "android.permission.ACCESS_FINE_LOCATION",
    "android.permission.POST_NOTIFICATIONS",
    "android.permission.READ_PHONE_STATE",
    "android.permission.BLUETOOTH_CONNECT",
    "android.permission.READ_MEDIA_IMAGES",
)
# Apps a device holds that no other device has: 1 to 8, about 2% of its apps.
_LONG_TAIL = (1, 8)
# The share of a known device's logins whose inventory changed since its last one: an app
# installed, updated or removed, in that order of likelihood.
INVENTORY_CHANGE_SHARE = 0.04
_CHANGE_KINDS = (("installed", 0.4), ("updated", 0.45), ("removed", 0.15))
# The logins of each device a client's pool holds: sent round and round, a pool whose logins
# repeated their bytes would have the gateway meet the same login again and again.
LOGIN_ROUNDS = 4
# The share of a device's apps with a process running at one login (a different few each time).
_RUNNING_SHARE = 0.06
# A phone's apps were installed over the months before the run.
_DAY = 86_400.0
_SETUP_DAYS = (30, 900)


def _store_app(rng: random.Random, package_name: str, label: str) -> telemetry_pb2.InstalledApp:
    """One build of an app as a store ships it: what every device holding that build reports alike."""
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
        # The dangerous permissions the app asks for; each device grants its own share of them.
        granted_permissions=rng.sample(_PERMISSIONS, k=rng.randint(0, 4)),
    )


def _app_universe(rng: random.Random, size: int = 3000) -> list[telemetry_pb2.InstalledApp]:
    return [_store_app(rng, f"com.vendor{index % 400}.app{index}", f"App {index}") for index in range(size)]


def _on_device(
    build: telemetry_pb2.InstalledApp, rng: random.Random, installed_at: float, updated_at: float
) -> telemetry_pb2.InstalledApp:
    """``build`` as one device reports it: its own install and update times and its own grants."""
    app = telemetry_pb2.InstalledApp()
    app.CopyFrom(build)
    asked = list(build.granted_permissions)
    del app.granted_permissions[:]
    app.granted_permissions.extend(permission for permission in asked if rng.random() < 0.6)
    app.first_install_time.FromSeconds(int(installed_at))
    app.last_update_time.FromSeconds(int(max(installed_at, updated_at)))
    return app


def _running(app: telemetry_pb2.InstalledApp, *, running: bool, foreground: bool) -> telemetry_pb2.InstalledApp:
    shown = telemetry_pb2.InstalledApp()
    shown.CopyFrom(app)
    shown.running = running
    shown.foreground = foreground
    return shown


@dataclass
class WorkloadMix:
    """What a workload sent, to print beside its figures: a bench is only as real as its devices."""

    logins: int = 0
    first_logins: int = 0
    installed: int = 0
    updated: int = 0
    removed: int = 0
    apps: int = 0
    phone_changes: int = 0
    # Whether the logins were sent by inventory digest, as an SDK that uses them does.
    by_digest: bool = False
    # Of the logins sent in a measured window: all, those with the digest alone, those sent again
    # with their list because the server did not hold the digest (0 when nobody counted).
    sent: int = 0
    sent_digest_only: int = 0
    sent_again: int = 0

    def _sent_by_digest(self) -> str:
        if not self.by_digest or not self.sent:
            return ""
        return (
            f"\n  Of the gateway's {self.sent} measured logins, {self.sent_digest_only / self.sent:.1%} sent the"
            f" digest alone and {self.sent_again} were sent again with their list (the gateway did not hold it)."
        )

    def describe(self, pool: int) -> str:
        """The mix in a line or two; ``pool``: the operations each client builds and then sends round."""
        logins = self.logins or 1
        changed = self.installed + self.updated + self.removed
        return (
            f"workload: {self.logins} logins per client, {self.apps / logins:.0f} apps each on average, every"
            f" device with its own install times and grants and a few apps running;"
            f" {self.first_logins / logins:.1%} first logins of a device, {changed / logins:.1%} with an"
            f" inventory changed since the device's last login ({self.installed} installed,"
            f" {self.updated} updated, {self.removed} removed); {self.phone_changes} phone-number changes;"
            f" {_BY_DIGEST if self.by_digest else _WITH_LISTS}."
            f"{self._sent_by_digest()}"
            f"\n  Each client sends its pool of {pool} operations round and round, each login as the"
            f" device's next one for {LOGIN_ROUNDS} rounds; past them a login repeats its bytes (with a fresh"
            f" request id, nonce and time)."
        )


_BY_DIGEST = "inventories sent by digest, the list only when the gateway does not hold it"
_WITH_LISTS = "every login carrying its whole list"


@dataclass
class _Device:
    """A device's inventory between its logins: what changed since the seed drew it."""

    apps: list[telemetry_pb2.InstalledApp]


class Workload:
    """Operations for a population of customers, each with a usual device and place."""

    def __init__(self, seed: int, customers: int, now: float, *, by_digest: bool = False) -> None:
        self._seed = seed
        self._by_digest = by_digest
        self._rng = random.Random(seed)
        self._now = now
        self._universe = _app_universe(self._rng)
        self._customers = customers
        self._counter = 0
        self._devices: dict[str, _Device] = {}
        self._later_devices: set[str] = set()  # the new devices of later rounds (``Operation.fresh_device``)
        self.mix = WorkloadMix(by_digest=by_digest)

    def _device_apps(self, device: str) -> list[telemetry_pb2.InstalledApp]:
        """The apps ``device`` holds when first seen: drawn from the seed and the device alone, so every
        client process reports the same ones, each with this device's own times and grants."""
        rng = random.Random(f"{self._seed}/{device}")
        count, tail = rng.randint(150, 300), rng.randint(*_LONG_TAIL)
        setup = self._now - rng.uniform(*_SETUP_DAYS) * _DAY
        rare = [_store_app(rng, f"org.rare.{device}.app{n}", f"Rare {n}") for n in range(tail)]
        builds = rng.sample(self._universe, k=count - tail) + rare
        apps = []
        for build in builds:
            installed_at = rng.uniform(setup, self._now - _DAY)
            apps.append(_on_device(build, rng, installed_at, rng.uniform(installed_at, self._now - _DAY)))
        return apps

    def _change_inventory(self, device: _Device) -> None:
        """One change since the device's last login: an app installed, updated or removed."""
        rng = self._rng
        kind = rng.choices([name for name, _ in _CHANGE_KINDS], weights=[weight for _, weight in _CHANGE_KINDS])[0]
        held = {app.package_name for app in device.apps}
        if kind == "installed":
            build = next((app for app in rng.sample(self._universe, k=8) if app.package_name not in held), None)
            if build is None:
                return
            device.apps.append(_on_device(build, rng, self._now - 600, self._now - 600))
            self.mix.installed += 1
        elif kind == "updated":
            index = rng.randrange(len(device.apps))
            app = telemetry_pb2.InstalledApp()
            app.CopyFrom(device.apps[index])
            app.version_code += 1
            app.apk_sha256 = _hex(rng, 64)
            app.last_update_time.FromSeconds(int(self._now - 600))
            device.apps[index] = app
            self.mix.updated += 1
        elif len(device.apps) > 1:
            del device.apps[rng.randrange(len(device.apps))]
            self.mix.removed += 1

    def _login(self, customer: int, device_id: str, *, lat: float, lon: float) -> telemetry_pb2.LoginTelemetry:
        rng = self._rng
        self._counter += 1
        device = self._devices.get(device_id)
        if device is None:
            device = self._devices[device_id] = _Device(self._device_apps(device_id))
            self.mix.first_logins += 1
        elif rng.random() < INVENTORY_CHANGE_SHARE:
            self._change_inventory(device)
        # What runs changes from one login to the next; the rest of each app is the device's own.
        apps = self._running_now(device.apps)
        self.mix.logins += 1
        self.mix.apps += len(apps)
        login = telemetry_pb2.LoginTelemetry(
            customer_id=f"bench-cust-{customer}",
            device_id=device_id,
            session_id=f"s{self._counter}",
            nonce=_hex(rng, 32),
            installed_apps=apps,
            location=telemetry_pb2.Location(latitude=lat, longitude=lon, accuracy_meters=30),
            client_ip=f"203.0.113.{rng.randint(1, 254)}",
        )
        login.collected_at.FromSeconds(int(self._now))
        return login

    def _request(self, login: telemetry_pb2.LoginTelemetry, *, fresh_device: bool = False) -> Operation:
        self._counter += 1
        request = threat_signal_service_pb2.CheckLoginRequest(request_id=f"bench-{self._counter}", telemetry=login)
        if not self._by_digest:
            return Operation(CHECK_LOGIN, request.SerializeToString(), fresh_device=fresh_device)
        body, form = _in_both_forms(request, None)
        return Operation(CHECK_LOGIN, body, digest_forms=(form,), fresh_device=fresh_device)

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
            login = self._login(customer, f"bench-dev-{customer}-{self._counter}", lat=home[0], lon=home[1])
            return [self._request(login, fresh_device=True)]
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
        self.mix.phone_changes += 1
        new_device = f"bench-dev-{customer}-{self._counter}"
        return [
            Operation(REPORT_PHONE_CHANGE, report.SerializeToString()),
            self._request(self._login(customer, new_device, lat=home[0], lon=home[1]), fresh_device=True),
            self._request(self._login(customer, new_device, lat=home[0], lon=home[1]), fresh_device=True),
        ]

    def operations(self, count: int, rounds: int = 1) -> list[Operation]:
        """A pool of ``count`` operations; with ``rounds`` above 1 each login carries the device's next
        ``rounds - 1`` logins for the pool's later rounds."""
        found: list[Operation] = []
        while len(found) < count:
            found.extend(self.sequence())
        pool = found[:count]
        if rounds <= 1:
            return pool
        return [
            self._with_later_logins(operation, rounds - 1) if operation.method == CHECK_LOGIN else operation
            for operation in pool
        ]

    def _with_later_logins(self, operation: Operation, later: int) -> Operation:
        request = threat_signal_service_pb2.CheckLoginRequest.FromString(operation.body)
        request.telemetry.ClearField("app_activity")  # each round's comes from its own running apps
        device = _Device(list(request.telemetry.installed_apps))
        bodies, forms = [], list(operation.digest_forms)
        first_device = request.telemetry.device_id
        for round_number in range(1, later + 1):
            changed = self._rng.random() < INVENTORY_CHANGE_SHARE
            if changed:
                self._change_inventory(device)
            if operation.fresh_device:
                request.telemetry.device_id = f"{first_device}-r{round_number}"
                if request.telemetry.device_id not in self._later_devices:  # a phone change's second login is not
                    self._later_devices.add(request.telemetry.device_id)
                    self.mix.first_logins += 1
            del request.telemetry.installed_apps[:]
            request.telemetry.installed_apps.extend(self._running_now(device.apps))
            self.mix.logins += 1
            self.mix.apps += len(device.apps)
            if forms:
                body, form = _in_both_forms(request, None if changed else forms[-1].digest)
                bodies.append(body)
                forms.append(form)
            else:
                bodies.append(request.SerializeToString())
        return Operation(operation.method, operation.body, tuple(bodies), tuple(forms), operation.fresh_device)

    def _running_now(self, apps: list[telemetry_pb2.InstalledApp]) -> list[telemetry_pb2.InstalledApp]:
        """``apps`` at one login: a different few of the device's own apps running (an app the workload
        added to the login, a remote-control or listed one, keeps what it reports)."""
        rng = self._rng
        own = [index for index, app in enumerate(apps) if app.HasField("first_install_time")]
        running = rng.sample(own, k=int(len(own) * _RUNNING_SHARE))
        # Now and then one of them is on screen (the banking app itself is not in the list).
        foreground = running[0] if running and rng.random() < 0.3 else -1
        own_set = set(own)
        shown = [
            _running(app, running=False, foreground=False)
            if index in own_set and (app.running or app.foreground)
            else app
            for index, app in enumerate(apps)
        ]
        for index in running:
            shown[index] = _running(shown[index], running=True, foreground=index == foreground)
        return shown


def _in_both_forms(
    request: threat_signal_service_pb2.CheckLoginRequest, digest: str | None
) -> tuple[bytes, DigestForm]:
    """The login with its list and digest, and with the digest alone; ``digest`` when already known
    (the inventory did not change: running and foreground are not part of it)."""
    sent = threat_signal_service_pb2.CheckLoginRequest(
        request_id=request.request_id, telemetry=with_inventory_digest(request.telemetry, digest)
    )
    body = sent.SerializeToString()
    sent.telemetry.ClearField("installed_apps")
    return body, DigestForm(request.telemetry.device_id, sent.telemetry.inventory_digest, sent.SerializeToString())
