"""Apps kept already checked give the answers of checking them anew, through the real gateway too."""

from __future__ import annotations

from pathlib import Path

import grpc
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.client import MtsgClient, field_violations
from gateway.config import Config
from gateway.generated.mtsg.v1 import common_pb2, telemetry_pb2, threat_signal_service_pb2
from gateway.login.checked_apps import MAX_KEPT_APP_BYTES, CheckedApps, kept_cost
from gateway.login.validation import Limits, check_apps
from gateway.login.wire import CheckLoginWire, decode_check_login
from gateway.server.start import RunningGateway, start_gateway
from gateway.violations import Violations
from tests.gateway.login.test_validation_paths import LATEST, LIMITS, app_or_mistake
from tests.helpers import app, gateway_config, telemetry, unknown_field

# Shared by every example: what one example keeps must not change another's answer.
_SHARED = CheckedApps(LIMITS, max_entries=64)


def _checked_anew(apps: list[telemetry_pb2.InstalledApp], latest: float = LATEST) -> tuple[tuple, list]:  # type: ignore[type-arg]
    violations = Violations()
    return check_apps(apps, LIMITS, latest, violations), violations.found


def _converted(kept: CheckedApps, encoded: list[bytes], latest: float = LATEST) -> tuple[tuple, list]:  # type: ignore[type-arg]
    violations = Violations()
    return kept.convert(encoded, latest, violations), violations.found


@settings(max_examples=1000, deadline=None)
@given(st.lists(app_or_mistake(), min_size=1, max_size=4))
def test_kept_apps_answer_as_checking_them_anew(apps: list[telemetry_pb2.InstalledApp]) -> None:
    expected, expected_violations = _checked_anew(apps)
    encoded = [each.SerializeToString() for each in apps]
    for _ in range(2):  # the first time apps are checked and kept, the second they are found
        result, violations = _converted(_SHARED, encoded)
        assert violations == expected_violations
        if not expected_violations:
            assert [each._replace(kept_bytes=0) for each in result] == list(expected)
    assert len(_SHARED) <= 64


def test_a_duplicate_of_a_kept_app_is_named() -> None:
    kept = CheckedApps(LIMITS, max_entries=100)
    first = app("com.bank.app", apk_sha256="a" * 64)
    assert _converted(kept, [first.SerializeToString()])[1] == []
    other_build = app("com.bank.app", apk_sha256="b" * 64)
    _, violations = _converted(kept, [first.SerializeToString(), other_build.SerializeToString()])
    assert [(v.field, v.description) for v in violations] == [
        ("telemetry.installed_apps[1].package_name", "duplicates installed_apps[0] (com.bank.app)")
    ]


def test_bytes_that_are_no_app_are_named_by_index() -> None:
    kept = CheckedApps(LIMITS, max_entries=100)
    good = app("com.bank.app").SerializeToString()
    _, violations = _converted(kept, [good, b"\xff\xff\xff"])
    assert [(v.field, v.description) for v in violations] == [
        ("telemetry.installed_apps[1]", "is not a valid InstalledApp message")
    ]


def test_a_clock_stepped_back_drops_the_kept_apps_so_future_times_are_refused() -> None:
    kept = CheckedApps(LIMITS, max_entries=100)
    recent = app("com.bank.app")
    recent.last_update_time.seconds = int(LATEST) - 10
    encoded = [recent.SerializeToString()]
    assert _converted(kept, encoded)[1] == []
    _, violations = _converted(kept, encoded, latest=LATEST - 100)
    assert [v.field for v in violations] == ["telemetry.installed_apps[0].last_update_time"]
    assert _converted(kept, encoded)[1] == []  # back in the window once the clock has caught up


def test_memory_is_bounded_by_max_entries() -> None:
    bounded, none = CheckedApps(LIMITS, max_entries=3), CheckedApps(LIMITS, max_entries=0)
    encoded = [app(f"com.example.app{i}").SerializeToString() for i in range(10)]
    for kept in (bounded, none):
        result, violations = _converted(kept, encoded)
        assert violations == [] and [each.package_name for each in result] == [f"com.example.app{i}" for i in range(10)]
    assert (len(bounded), len(none)) == (3, 0)


def test_the_wire_form_decodes_the_contract_byte_for_byte() -> None:
    login = telemetry(installed_apps=[app("com.kakao.talk", running=True), app("com.bank.app")])
    request = threat_signal_service_pb2.CheckLoginRequest(request_id="r-1", telemetry=login)
    body = request.SerializeToString()
    wire = decode_check_login(body)
    assert list(wire.telemetry.installed_apps) == [each.SerializeToString() for each in login.installed_apps]  # type: ignore[attr-defined]
    assert wire.SerializeToString(deterministic=True) == request.SerializeToString(deterministic=True)
    assert CheckLoginWire.DESCRIPTOR.full_name == "mtsg.v1.CheckLoginRequest"
    assert threat_signal_service_pb2.CheckLoginRequest.FromString(wire.SerializeToString()) == request


async def _app_lookups(gateway: RunningGateway) -> dict[str, float]:
    """mtsg_app_cache_lookups_total by result, and mtsg_app_cache_entries as "entries"."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics")).text
    counts = {}
    for line in text.splitlines():
        if line.startswith("mtsg_app_cache_lookups_total{"):
            counts[line.split('result="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("mtsg_app_cache_entries "):
            counts["entries"] = float(line.rsplit(" ", 1)[1])
    return counts


async def test_a_second_login_with_the_same_apps_finds_them_and_gets_the_same_verdict(
    gateway: RunningGateway, client: MtsgClient
) -> None:
    apps = [app("com.anydesk.anydeskandroid", label="AnyDesk", running=True), app("com.kakao.talk")]
    first = await client.check_login(telemetry(installed_apps=apps, call={"active_call": True}))
    before = await _app_lookups(gateway)
    second = await client.check_login(telemetry(installed_apps=apps, call={"active_call": True}))
    after = await _app_lookups(gateway)
    assert first.action == second.action == common_pb2.ACTION_FREEZE
    assert [r.code for r in first.reasons] == [r.code for r in second.reasons]
    assert after.get("hit", 0) - before.get("hit", 0) == 2
    assert after.get("miss", 0) == before.get("miss", 0)
    assert after["entries"] >= 2


async def test_with_no_entries_configured_every_app_is_checked_anew(tmp_path: Path) -> None:
    gateway = await start_gateway(gateway_config(tmp_path, metrics=True, login__app_cache_entries="0"))
    try:
        async with MtsgClient(gateway.target, timeout=30) as client:
            apps = [app("com.kakao.talk"), app("com.bank.app")]
            for _ in range(2):
                assert (await client.check_login(telemetry(installed_apps=apps))).action == common_pb2.ACTION_ALLOW
        assert await _app_lookups(gateway) == {"hit": 0, "miss": 4, "entries": 0}
    finally:
        await gateway.stop(grace=1.0)


async def test_an_app_that_is_not_protobuf_gets_invalid_argument_naming_it(gateway: RunningGateway) -> None:
    login = telemetry(installed_apps=[app("com.kakao.talk")])
    wire = decode_check_login(threat_signal_service_pb2.CheckLoginRequest(telemetry=login).SerializeToString())
    wire.telemetry.installed_apps.append(b"\x0a\xff\xff")  # type: ignore[attr-defined]  # a length past the end
    async with grpc.aio.insecure_channel(gateway.target) as channel:
        call = channel.unary_unary("/mtsg.v1.ThreatSignalService/CheckLogin")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(wire.SerializeToString(), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [("telemetry.installed_apps[1]", "is not a valid InstalledApp message")]


def test_an_app_carrying_unknown_fields_is_used_but_never_kept() -> None:
    kept = CheckedApps(LIMITS, max_entries=100)
    padded = app("com.bank.app", label="Bank").SerializeToString() + unknown_field(9_999, b"x" * 5_000)
    (converted,), violations = _converted(kept, [padded])
    assert violations == [] and converted.label == "Bank"
    assert (len(kept), kept.kept_bytes, converted.kept_bytes) == (0, 0, 0)


def test_kept_apps_never_cost_more_than_the_byte_bound() -> None:
    plain = [app(f"com.app{number:02d}", label="x" * 200).SerializeToString() for number in range(40)]
    one = kept_cost(len(plain[0]))
    kept = CheckedApps(LIMITS, max_entries=1_000, max_bytes=10 * one)
    _converted(kept, plain)
    assert len(kept) == 10 and kept.kept_bytes == 10 * one
    # The newest stay: the first thirty were pushed out, oldest first.
    (found,), _ = _converted(kept, [plain[-1]])
    assert found.kept_bytes == len(plain[-1])
    # A valid app can be large (200 permissions of 255 characters); such an app is used, never kept.
    roomy = CheckedApps(Limits.of(Config()), max_entries=1_000)
    big = app("com.big.app", granted_permissions=[f"p.{'x' * 200}.{n}" for n in range(60)]).SerializeToString()
    assert len(big) > MAX_KEPT_APP_BYTES
    (converted,), violations = _converted(roomy, [big])
    assert violations == [] and converted.kept_bytes == 0 and len(roomy) == 0
