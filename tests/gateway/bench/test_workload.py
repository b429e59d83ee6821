"""The bench's devices behave like phones: their own times and grants, what runs changes, inventories change."""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise

from gateway.bench.workload import (
    CHECK_LOGIN,
    INVENTORY_CHANGE_SHARE,
    LOGIN_ROUNDS,
    Operation,
    Workload,
)
from gateway.generated.mtsg.v1 import telemetry_pb2, threat_signal_service_pb2
from gateway.login.inventory_digest import inventory_digest

NOW = 1_800_000_000.0


def _telemetry(body: bytes) -> telemetry_pb2.LoginTelemetry:
    return threat_signal_service_pb2.CheckLoginRequest.FromString(body).telemetry


def _pool(customers: int = 400, count: int = 300) -> list[Operation]:
    return [op for op in Workload(5, customers, NOW).operations(count, LOGIN_ROUNDS) if op.method == CHECK_LOGIN]


def test_two_devices_never_send_one_app_alike() -> None:
    by_package: dict[str, dict[str, bytes]] = defaultdict(dict)
    for operation in _pool()[:60]:
        login = _telemetry(operation.body)
        for app in login.installed_apps:
            if app.package_name.startswith("com.vendor") and not app.running:
                by_package[app.package_name][login.device_id] = app.SerializeToString()
    shared = {package: forms for package, forms in by_package.items() if len(forms) >= 2}
    assert len(shared) > 100, "the common apps should be common"
    alike = [package for package, forms in shared.items() if len(set(forms.values())) < len(forms)]
    assert alike == []


def test_each_app_carries_its_devices_times_and_grants() -> None:
    login = _telemetry(_pool()[0].body)
    own = [app for app in login.installed_apps if app.HasField("first_install_time")]
    assert len(own) >= 150
    for app in own:
        assert 946_684_800 < app.first_install_time.seconds <= app.last_update_time.seconds < NOW
        assert len(app.granted_permissions) <= 4
    assert len({app.first_install_time.seconds for app in own}) > len(own) // 2


def test_a_device_s_next_logins_differ_and_some_change_inventory() -> None:
    pool = _pool(customers=2000, count=600)
    rounds = [[_telemetry(operation.in_round(r)) for r in range(LOGIN_ROUNDS)] for operation in pool]
    changed = logins = 0
    for logins_of_device in rounds:
        for before, after in pairwise(logins_of_device):
            logins += 1
            running_before = {app.package_name for app in before.installed_apps if app.running}
            running_after = {app.package_name for app in after.installed_apps if app.running}
            assert running_before != running_after or not running_before
            inventory = [(app.package_name, app.apk_sha256) for app in before.installed_apps]
            if inventory != [(app.package_name, app.apk_sha256) for app in after.installed_apps]:
                changed += 1
    share = changed / logins
    assert INVENTORY_CHANGE_SHARE / 3 < share < INVENTORY_CHANGE_SHARE * 2, share
    assert pool[0].in_round(LOGIN_ROUNDS) == pool[0].body  # past the rounds the pool starts over


def test_the_mix_says_what_was_sent() -> None:
    workload = Workload(5, 2000, NOW)
    workload.operations(500, LOGIN_ROUNDS)
    mix = workload.mix
    assert mix.logins > 500 * 3
    assert 0 < mix.first_logins < mix.logins
    assert mix.installed + mix.updated + mix.removed > 0
    text = mix.describe(500)
    assert "first logins of a device" in text and "with an inventory changed" in text
    assert f"{mix.logins} logins per client" in text


def test_by_digest_each_login_has_its_digest_only_form_and_the_digest_follows_the_inventory() -> None:
    operations = [
        op for op in Workload(5, 400, NOW, by_digest=True).operations(120, LOGIN_ROUNDS) if op.method == CHECK_LOGIN
    ]
    kept = changed = 0
    for operation in operations:
        for round_number in range(LOGIN_ROUNDS):
            full = _telemetry(operation.in_round(round_number))
            form = operation.digest_form(round_number)
            assert form is not None and form.device_id == full.device_id
            assert full.inventory_digest == form.digest == inventory_digest(full.installed_apps)
            short = _telemetry(form.short)
            assert not short.installed_apps and short.inventory_digest == form.digest
            running = sorted(app.package_name for app in full.installed_apps if app.running)
            assert list(short.app_activity.running_packages) == running
        for earlier, later in pairwise(range(LOGIN_ROUNDS)):
            before, after = operation.digest_form(earlier), operation.digest_form(later)
            assert before is not None and after is not None
            if operation.fresh_device:
                assert before.device_id != after.device_id  # a new device's round is a new device again
            elif before.digest == after.digest:
                kept += 1
            else:
                changed += 1
    assert changed > 0 and kept > 10 * changed  # what runs changes every login; the inventory seldom


def test_without_digests_no_login_carries_one() -> None:
    for operation in _pool(count=40):
        assert operation.digest_form(0) is None
        assert _telemetry(operation.body).inventory_digest == ""
