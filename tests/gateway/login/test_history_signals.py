"""Detectors that need history, end to end: the gateway stores what the next login is compared with."""

from __future__ import annotations

import uuid

import grpc
import pytest

from gateway.client import MtsgClient, field_violations
from gateway.generated.mtsg.v1 import common_pb2, policy_service_pb2, telemetry_pb2
from gateway.server.start import RunningGateway
from tests.helpers import app, telemetry

SEOUL = {"latitude": 37.5665, "longitude": 126.9780, "accuracy_meters": 20, "country_code": "KR"}
TOKYO = {"latitude": 35.6762, "longitude": 139.6503, "accuracy_meters": 20, "country_code": "JP"}


def codes(verdict: object) -> dict[str, dict[str, str]]:
    return {reason.code: dict(reason.evidence) for reason in verdict.reasons}  # type: ignore[attr-defined]


async def test_a_sideloaded_sms_app_installed_since_the_last_login_steps_up(client: MtsgClient) -> None:
    customer, device = f"c-{uuid.uuid4().hex[:8]}", f"d-{uuid.uuid4().hex[:8]}"
    store_apps = [app("com.kakao.talk", installer_class=telemetry_pb2.INSTALLER_CLASS_OFFICIAL_STORE)]
    first = await client.check_login(telemetry(customer_id=customer, device_id=device, installed_apps=store_apps))
    assert "APPS_INSTALLED_SINCE_LAST_LOGIN" not in codes(first)  # nothing to compare with yet

    payload = app(
        "kr.fake.delivery",
        label="Delivery Tracker",
        installer_class=telemetry_pb2.INSTALLER_CLASS_PACKAGE_INSTALLER,
        granted_permissions=["android.permission.RECEIVE_SMS", "android.permission.READ_SMS"],
    )
    second = await client.check_login(
        telemetry(customer_id=customer, device_id=device, installed_apps=[*store_apps, payload])
    )
    found = codes(second)
    assert found["APPS_INSTALLED_SINCE_LAST_LOGIN"]["new_apps"] == "1"
    assert found["SIDELOADED_APP_INSTALLED_SINCE_LAST_LOGIN"]["package"] == "kr.fake.delivery"
    assert "SIDELOADED_RISKY_APP" in found
    assert (second.action, second.scenario_id) == (
        common_pb2.ACTION_STEP_UP,
        "sideloaded-risky-app-since-last-login",
    )
    assert "Delivery Tracker was sideloaded since the last login and can use SMS" in second.summary
    assert second.step_up_method == common_pb2.STEP_UP_METHOD_VIDEO_CALL

    third = await client.check_login(
        telemetry(customer_id=customer, device_id=device, installed_apps=[*store_apps, payload])
    )
    assert "SIDELOADED_APP_INSTALLED_SINCE_LAST_LOGIN" not in codes(third)  # no longer new


async def test_a_new_device_far_away_and_too_fast_steps_up(client: MtsgClient) -> None:
    customer = f"c-{uuid.uuid4().hex[:8]}"
    home = await client.check_login(telemetry(customer_id=customer, device_id="home-phone", location=SEOUL))
    assert home.action == common_pb2.ACTION_ALLOW
    away = await client.check_login(telemetry(customer_id=customer, device_id="other-phone", location=TOKYO))
    found = codes(away)
    assert {"NEW_DEVICE", "UNUSUAL_LOCATION", "IMPOSSIBLE_TRAVEL", "NEW_COUNTRY"} <= found.keys()
    assert 1100 < float(found["UNUSUAL_LOCATION"]["distance_km"]) < 1200
    assert found["NEW_COUNTRY"]["country"] == "JP"
    # Too fast to have travelled: the session's holder is checked by face (an OTP may reach a stolen number).
    assert (away.action, away.scenario_id) == (common_pb2.ACTION_STEP_UP, "impossible-travel")
    assert away.step_up_method == common_pb2.STEP_UP_METHOD_FACE


async def test_impossible_travel_on_the_customers_own_device_steps_up_and_reads_as_a_sentence(
    client: MtsgClient,
) -> None:
    customer, device = f"c-{uuid.uuid4().hex[:8]}", f"d-{uuid.uuid4().hex[:8]}"
    frankfurt = {"latitude": 50.1109, "longitude": 8.6821, "accuracy_meters": 20, "country_code": "DE"}
    await client.check_login(telemetry(customer_id=customer, device_id=device, location=SEOUL))
    away = await client.check_login(telemetry(customer_id=customer, device_id=device, location=frankfurt))
    found = codes(away)
    assert "NEW_DEVICE" not in found
    assert (away.action, away.scenario_id) == (common_pb2.ACTION_STEP_UP, "impossible-travel")
    assert away.risk_score == 75  # the deciding scenario's score, not the findings' weight
    messages = {reason.code: reason.message for reason in away.reasons}
    assert messages["IMPOSSIBLE_TRAVEL"].startswith("The previous login was 8,")
    assert messages["IMPOSSIBLE_TRAVEL"].endswith(" km away, less than a minute ago.")
    assert messages["NEW_COUNTRY"] == "The login comes from Germany, a country never seen for this customer."


async def test_a_shared_device_is_recorded_in_shadow_without_changing_the_verdict(
    client: MtsgClient, gateway: RunningGateway
) -> None:
    device = f"mule-{uuid.uuid4().hex[:8]}"
    verdicts = [await client.check_login(telemetry(device_id=device)) for _ in range(3)]
    third = verdicts[-1]
    assert codes(third)["SHARED_DEVICE"]["other_customers"] == "2"
    assert third.action == common_pb2.ACTION_ALLOW  # the shipped shared-device scenario runs in shadow
    assert [f.scenario_id for f in third.fired_scenarios] == []  # shadow firings are not shown to the device
    report = await gateway.store.policies.shadow_report(0, 4e9)
    (row,) = [r for r in report if r.scenario_id == "shared-device"]
    assert (row.would_action, row.fired, row.would_change) == ("ACTION_STEP_UP", 1, 1)
    assert row.by_actual_action == {"ACTION_ALLOW": 1}


async def test_detector_floors_come_from_the_policy(client: MtsgClient) -> None:
    document = (await client.policy.GetPolicy(policy_service_pb2.GetPolicyRequest(), timeout=10)).policy.document
    raised = document.replace("unusual_location_km = 300", "unusual_location_km = 2000")
    await client.policy.ApplyPolicy(policy_service_pb2.ApplyPolicyRequest(document=raised), timeout=10)
    customer = f"c-{uuid.uuid4().hex[:8]}"
    await client.check_login(telemetry(customer_id=customer, device_id="p1", location=SEOUL))
    away = await client.check_login(telemetry(customer_id=customer, device_id="p1", location=TOKYO))
    assert "UNUSUAL_LOCATION" not in codes(away)  # 1,150 km is under the new 2,000 km floor
    assert "IMPOSSIBLE_TRAVEL" in codes(away)


async def test_attestation_and_country_code_are_validated(client: MtsgClient) -> None:
    for fields, field in (
        ({"location": {"latitude": 1, "longitude": 1, "country_code": "Korea"}}, "telemetry.location.country_code"),
        ({"attestation": {"meets_basic_integrity": True}}, "telemetry.attestation.provider"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.check_login(telemetry(**fields))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in [name for name, _ in field_violations(refused.value)]
    failing = await client.check_login(telemetry(attestation={"provider": "play-integrity", "app_recognized": False}))
    assert codes(failing)["ATTESTATION_FAILED"]["failed"] == "basic_integrity, device_integrity, app_recognized"
