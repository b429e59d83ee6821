"""CheckLogin over real gRPC against a real gateway on a free port."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import pytest

from gateway.client import MtsgClient, field_violations
from gateway.generated.mtsg.v1 import common_pb2, telemetry_pb2
from gateway.server.start import RunningGateway
from tests.helpers import app, phone_change, telemetry

SHA256 = "9c1e447a0b3d52e861f907aa2c4b8d135e7790c21f6a3bd8e405719f26b0c348"


async def test_clean_login_is_allowed_and_the_device_is_remembered(client: MtsgClient) -> None:
    login = telemetry(installed_apps=[app("com.kakao.talk", running=True)])
    first = await client.check_login(login)
    assert first.action == common_pb2.ACTION_ALLOW
    assert [reason.code for reason in first.reasons] == ["NEW_DEVICE"]
    assert first.verdict_id.startswith("v_")
    assert first.policy_version == "1"

    again = telemetry(customer_id=login.customer_id, device_id=login.device_id)
    second = await client.check_login(again)
    assert second.action == common_pb2.ACTION_ALLOW
    assert list(second.reasons) == []
    assert second.summary == "Nothing suspicious was found."
    assert second.verdict_id != first.verdict_id


async def test_remote_control_app_running_during_a_call_freezes(client: MtsgClient) -> None:
    login = telemetry(
        installed_apps=[app("com.anydesk.anydeskandroid", label="AnyDesk", running=True), app("com.kakao.talk")],
        call={"active_call": True},
    )
    verdict = await client.check_login(login)
    assert verdict.action == common_pb2.ACTION_FREEZE
    assert verdict.scenario_id == "remote-control-during-call"
    assert verdict.summary == "AnyDesk is running while a phone call is active."
    assert set(verdict.freeze_scopes) == {
        common_pb2.FREEZE_SCOPE_TRANSFERS,
        common_pb2.FREEZE_SCOPE_CASH_WITHDRAWAL,
        common_pb2.FREEZE_SCOPE_CARD_LOANS,
    }
    codes = {reason.code: reason for reason in verdict.reasons}
    assert codes["REMOTE_CONTROL_APP_ACTIVE"].evidence["package_name"] == "com.anydesk.anydeskandroid"
    assert codes["REMOTE_CONTROL_APP_ACTIVE"].scenario_id == "remote-control-during-call"
    assert codes["ACTIVE_CALL"].severity == common_pb2.SEVERITY_LOW


async def test_phone_change_then_new_device_steps_up_with_callback(client: MtsgClient) -> None:
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    await client.check_login(telemetry(customer_id=customer, device_id="old-phone"))
    stored = await client.report_phone_number_changes([phone_change(customer)])
    assert (stored.accepted_count, stored.duplicate_count) == (1, 0)

    on_old_phone = await client.check_login(telemetry(customer_id=customer, device_id="old-phone"))
    assert on_old_phone.action == common_pb2.ACTION_ALLOW
    assert [reason.code for reason in on_old_phone.reasons] == ["PHONE_NUMBER_CHANGED_RECENTLY"]

    on_new_phone = await client.check_login(telemetry(customer_id=customer, device_id="new-phone"))
    assert on_new_phone.action == common_pb2.ACTION_STEP_UP
    assert on_new_phone.step_up_method == common_pb2.STEP_UP_METHOD_CALLBACK_PREVIOUS_NUMBER
    assert on_new_phone.scenario_id == "phone-changed-new-device"
    assert "phone number was changed" in on_new_phone.summary


async def test_a_phone_change_reported_without_kind_or_source_shows_neither(client: MtsgClient) -> None:
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    await client.report_phone_number_changes([phone_change(customer, source="")])
    verdict = await client.check_login(telemetry(customer_id=customer))
    (reason,) = [reason for reason in verdict.reasons if reason.code == "PHONE_NUMBER_CHANGED_RECENTLY"]
    assert set(reason.evidence) == {"changed_at", "days_ago"}  # nothing reads "unspecified"


_STEALER_PERMISSIONS = ["android.permission.RECEIVE_SMS", "android.permission.READ_SMS"]


@pytest.mark.parametrize(
    ("installed", "scenario"),
    [
        # The common voice-phishing app: sent as a link, installed by the package installer, holding
        # SMS and accessibility; on the device's very first login there is nothing to compare with.
        (
            app(
                "kr.delivery.tracking",
                label="Delivery Tracker",
                installer_class=telemetry_pb2.INSTALLER_CLASS_PACKAGE_INSTALLER,
                granted_permissions=_STEALER_PERMISSIONS,
                accessibility_service_enabled=True,
            ),
            "sideloaded-stealer",
        ),
        # A fake bank app with SMS and call permissions.
        (
            app(
                "kr.kbstar.secure",
                label="KB Secure",
                installer_class=telemetry_pb2.INSTALLER_CLASS_PACKAGE_INSTALLER,
                granted_permissions=[*_STEALER_PERMISSIONS, "android.permission.CALL_PHONE"],
            ),
            "sideloaded-stealer",
        ),
    ],
)
async def test_a_sideloaded_stealer_freezes_on_a_devices_first_login(
    client: MtsgClient, installed: telemetry_pb2.InstalledApp, scenario: str
) -> None:
    verdict = await client.check_login(telemetry(installed_apps=[installed]))
    assert (verdict.action, verdict.scenario_id) == (common_pb2.ACTION_FREEZE, scenario)
    assert verdict.risk_score == 92
    (sideloaded,) = [reason for reason in verdict.reasons if reason.code == "SIDELOADED_RISKY_APP"]
    assert " can use SMS and " in sideloaded.message or " can use accessibility and SMS" in sideloaded.message


async def test_a_hooking_framework_on_a_known_rooted_device_steps_up(client: MtsgClient) -> None:
    customer, device = f"cust-{uuid.uuid4().hex[:8]}", f"dev-{uuid.uuid4().hex[:8]}"
    await client.check_login(telemetry(customer_id=customer, device_id=device))
    hooked = telemetry(customer_id=customer, device_id=device, integrity={"rooted": True, "hooking_framework": True})
    verdict = await client.check_login(hooked)
    assert (verdict.action, verdict.scenario_id) == (common_pb2.ACTION_STEP_UP, "attack-tooling")
    assert verdict.step_up_method == common_pb2.STEP_UP_METHOD_VIDEO_CALL


async def test_an_allow_never_reads_as_risky_as_an_acting_verdict(client: MtsgClient) -> None:
    """Findings no scenario acts on: the score stays under the policy's lowest acting score, the summary names them."""
    customer, device = f"cust-{uuid.uuid4().hex[:8]}", f"dev-{uuid.uuid4().hex[:8]}"
    await client.check_login(telemetry(customer_id=customer, device_id=device))
    noted = telemetry(
        customer_id=customer,
        device_id=device,
        integrity={"mock_location": True, "untrusted_installer": True},
        installed_apps=[app("com.anydesk.anydeskandroid", label="AnyDesk")],
    )
    verdict = await client.check_login(noted)
    assert verdict.action == common_pb2.ACTION_ALLOW
    assert verdict.risk_score == 59  # three MEDIUM findings weigh 75; the playbook acts from 60
    assert verdict.summary.startswith("No scenario acts on what was found: ")
    assert "a mock-location provider is active" in verdict.summary


async def test_phone_change_outside_the_window_does_not_count(client: MtsgClient) -> None:
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    old = phone_change(customer)
    old.changed_at.FromSeconds(int(time.time()) - 8 * 86400)  # default window: 7 days
    await client.report_phone_number_changes([old])
    verdict = await client.check_login(telemetry(customer_id=customer))
    assert verdict.action == common_pb2.ACTION_ALLOW


async def test_retry_with_same_request_id_returns_the_same_verdict_and_records_once(
    client: MtsgClient, gateway: RunningGateway
) -> None:
    login = telemetry(installed_apps=[app("com.kakao.talk")], location={"latitude": 37.5, "longitude": 127.0})
    request_id = uuid.uuid4().hex
    first = await client.check_login(login, request_id=request_id)
    retries = await asyncio.gather(*(client.check_login(login, request_id=request_id) for _ in range(5)))
    # Compared as messages: map fields (evidence) may serialize in any order.
    assert all(retry == first for retry in retries)
    store = gateway.store
    assert await store.count_rows("verdicts") == 1  # type: ignore[attr-defined]
    assert await store.count_rows("login_locations") == 1  # type: ignore[attr-defined]
    # The device was counted once: a second login from it is not new.
    follow_up = await client.check_login(telemetry(customer_id=login.customer_id, device_id=login.device_id))
    assert [reason.code for reason in follow_up.reasons] == []


async def test_concurrent_first_attempts_with_one_request_id_store_one_verdict(
    client: MtsgClient, gateway: RunningGateway
) -> None:
    login = telemetry()
    request_id = uuid.uuid4().hex
    answers = await asyncio.gather(*(client.check_login(login, request_id=request_id) for _ in range(8)))
    assert len({answer.verdict_id for answer in answers}) == 1
    assert await gateway.store.count_rows("verdicts") == 1  # type: ignore[attr-defined]


async def test_request_id_reused_for_a_different_login_is_refused(client: MtsgClient) -> None:
    request_id = uuid.uuid4().hex
    await client.check_login(telemetry(), request_id=request_id)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.check_login(telemetry(), request_id=request_id)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value)[0][0] == "request_id"


def _with(**changes: object) -> telemetry_pb2.LoginTelemetry:
    return telemetry(**changes)


def _negative_collected_at() -> telemetry_pb2.LoginTelemetry:
    login = telemetry()
    login.collected_at.seconds = -5
    return login


def _future_collected_at() -> telemetry_pb2.LoginTelemetry:
    login = telemetry()
    login.collected_at.FromSeconds(int(time.time()) + 3600)
    return login


def _without_collected_at() -> telemetry_pb2.LoginTelemetry:
    login = telemetry()
    login.ClearField("collected_at")
    return login


def _negative_install_time() -> telemetry_pb2.LoginTelemetry:
    login = telemetry(installed_apps=[app("com.kakao.talk")])
    login.installed_apps[0].first_install_time.seconds = -100
    return login


BAD_LOGINS = [
    ("missing customer_id", lambda: _with(customer_id=""), "telemetry.customer_id"),
    ("missing device_id", lambda: _with(device_id=""), "telemetry.device_id"),
    ("customer_id too long", lambda: _with(customer_id="c" * 129), "telemetry.customer_id"),
    ("control characters", lambda: _with(customer_id="bad\nid"), "telemetry.customer_id"),
    ("missing collected_at", _without_collected_at, "telemetry.collected_at"),
    ("negative collected_at", _negative_collected_at, "telemetry.collected_at"),
    ("collected_at in the future", _future_collected_at, "telemetry.collected_at"),
    ("negative install time", _negative_install_time, "telemetry.installed_apps[0].first_install_time"),
    (
        "malformed apk hash",
        lambda: _with(installed_apps=[app("a.b"), app("c.d", apk_sha256="xyz")]),
        "telemetry.installed_apps[1].apk_sha256",
    ),
    (
        "sha1 where sha256 is due",
        lambda: _with(installed_apps=[app("a.b", signing_cert_sha256=SHA256[:40])]),
        "telemetry.installed_apps[0].signing_cert_sha256",
    ),
    (
        "sha256 where sha1 is due",
        lambda: _with(installed_apps=[app("a.b", signing_cert_sha1=SHA256)]),
        "telemetry.installed_apps[0].signing_cert_sha1",
    ),
    ("missing package name", lambda: _with(installed_apps=[app("")]), "telemetry.installed_apps[0].package_name"),
    (
        # A regex's `$` also matches before a final newline: only a full match refuses this.
        "package name ending in a newline",
        lambda: _with(installed_apps=[app("com.example.app\n")]),
        "telemetry.installed_apps[0].package_name",
    ),
    (
        "duplicate package name",
        lambda: _with(installed_apps=[app("a.b"), app("a.b")]),
        "telemetry.installed_apps[1].package_name",
    ),
    ("latitude out of range", lambda: _with(location={"latitude": 91, "longitude": 0}), "telemetry.location.latitude"),
    (
        "longitude out of range",
        lambda: _with(location={"latitude": 0, "longitude": -180.5}),
        "telemetry.location.longitude",
    ),
    ("latitude not a number", lambda: _with(location={"latitude": float("nan")}), "telemetry.location.latitude"),
    ("bad client ip", lambda: _with(client_ip="999.1.1.1"), "telemetry.client_ip"),
    (
        "unknown installer class",
        lambda: _with(installed_apps=[app("a.b", installer_class=42)]),  # type: ignore[arg-type]
        "telemetry.installed_apps[0].installer_class",
    ),
    (
        "too many apps",
        lambda: _with(installed_apps=[app(f"com.example.app{i}") for i in range(2001)]),
        "telemetry.installed_apps",
    ),
]


@pytest.mark.parametrize(("build", "field"), [(b, f) for _, b, f in BAD_LOGINS], ids=[n for n, _, _ in BAD_LOGINS])
async def test_bad_input_gets_invalid_argument_naming_the_field(client: MtsgClient, build, field: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.check_login(build())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [violation for violation, _ in field_violations(caught.value)]
    assert (await client.check_login(telemetry())).action == common_pb2.ACTION_ALLOW  # still serving


async def test_a_request_id_ending_in_a_newline_is_refused(client: MtsgClient) -> None:
    from gateway.generated.mtsg.v1 import threat_signal_service_pb2

    request = threat_signal_service_pb2.CheckLoginRequest(request_id="login-1\n", telemetry=telemetry())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.check_login_request(request)
    assert [field for field, _ in field_violations(caught.value)] == ["request_id"]


async def test_missing_telemetry_is_named(client: MtsgClient) -> None:
    from gateway.generated.mtsg.v1 import threat_signal_service_pb2

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.check_login_request(threat_signal_service_pb2.CheckLoginRequest())
    assert field_violations(caught.value) == [("telemetry", "is required")]


async def test_every_problem_is_listed_at_once_and_the_list_is_capped(client: MtsgClient) -> None:
    bad_apps = [app(f"com.example.app{i}", apk_sha256="nothex") for i in range(300)]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.check_login(telemetry(customer_id="", installed_apps=bad_apps))
    violations = field_violations(caught.value)
    assert violations[0] == ("telemetry.customer_id", "is required")
    assert len(violations) == 51  # 50 listed + one line counting the rest
    assert violations[-1] == ("", "251 more problems were not listed")
    assert "and 300 more problems" in (caught.value.details() or "")


async def test_one_hundred_thousand_apps_get_a_clear_error(client: MtsgClient) -> None:
    huge = telemetry(installed_apps=[app(f"a{i}.b") for i in range(100_000)])
    assert huge.ByteSize() < 4 * 1024 * 1024  # reaches the validator rather than the transport limit
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.check_login(huge)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [("telemetry.installed_apps", "at most 2000 apps per login, got 100000")]


async def test_oversized_message_is_refused_by_the_transport_and_the_server_keeps_serving(client: MtsgClient) -> None:
    oversized = telemetry(installed_apps=[app("a.b", label="x" * 200, granted_permissions=["p" * 200] * 150)] * 200)
    assert oversized.ByteSize() > 4 * 1024 * 1024
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.check_login(oversized)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (await client.check_login(telemetry())).action == common_pb2.ACTION_ALLOW


async def test_garbage_bytes_are_not_an_internal_error(gateway: RunningGateway) -> None:
    async with grpc.aio.insecure_channel(gateway.target) as channel:
        call = channel.unary_unary("/mtsg.v1.ThreatSignalService/CheckLogin")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(b"\xff\xff\xff\x07not protobuf", timeout=10)
    assert caught.value.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.OK)
