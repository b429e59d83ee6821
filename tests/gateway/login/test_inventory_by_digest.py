"""Inventory by digest on a real gateway: a device sends its list once, then only its digest.

The verdict of a login that sends only its digest must be the verdict it would have had with
its list; a digest the gateway does not hold is refused with a reason the SDK acts on, and
nothing of such a call is stored.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import grpc
import pytest

from gateway.client import MtsgClient, error_reason, field_violations, with_inventory_digest
from gateway.generated.mtsg.v1 import common_pb2, telemetry_pb2, threat_signal_service_pb2
from gateway.login.inventory_digest import inventory_digest
from gateway.server.start import RunningGateway, start_gateway
from gateway.store.retention import DAY, RetentionPolicy
from tests.helpers import again, app, gateway_config, package_entry_request, telemetry

STORE_APPS = [
    app(
        "com.kakao.talk",
        label="KakaoTalk",
        installer_class=telemetry_pb2.INSTALLER_CLASS_OFFICIAL_STORE,
        apk_sha256="ab" * 32,
        granted_permissions=["android.permission.CAMERA", "android.permission.INTERNET"],
        first_install_time={"seconds": 1_700_000_000},
        last_update_time={"seconds": 1_760_000_000, "nanos": 5},
    ),
    app("com.kbstar.kbbank", label="KB Star", installer_class=telemetry_pb2.INSTALLER_CLASS_OFFICIAL_STORE),
]
ANYDESK = app("com.anydesk.anydeskandroid", label="AnyDesk")
PAYLOAD = app(
    "kr.fake.delivery",
    label="Delivery Tracker",
    installer_class=telemetry_pb2.INSTALLER_CLASS_PACKAGE_INSTALLER,
    granted_permissions=["android.permission.RECEIVE_SMS", "android.permission.READ_SMS"],
)
LISTED = app("com.fake.prosecutor", label="Prosecutor Office")


def _login(customer: str, device: str, apps: Sequence[telemetry_pb2.InstalledApp], **fields: object):
    return telemetry(customer_id=customer, device_id=device, installed_apps=list(apps), **fields)


def _digest_only(login: telemetry_pb2.LoginTelemetry) -> telemetry_pb2.LoginTelemetry:
    """The login as an SDK sends it while the gateway holds its inventory: digest and activity, no list."""
    short = with_inventory_digest(login)
    short.ClearField("installed_apps")
    return short


def _outcome(verdict: threat_signal_service_pb2.CheckLoginResponse) -> tuple[object, ...]:
    """What a customer and an analyst are told: all but the verdict's id and time and the device's id."""
    reasons = sorted(
        (reason.code, reason.message, tuple(sorted((k, v) for k, v in reason.evidence.items() if k != "device_id")))
        for reason in verdict.reasons
    )
    return verdict.action, verdict.scenario_id, verdict.summary, verdict.risk_score, tuple(reasons)


def _lookups(gateway: RunningGateway, result: str) -> float:
    value = gateway.metrics.registry.get_sample_value("mtsg_held_inventory_lookups_total", {"result": result})
    return value or 0.0


# Each scenario: the device's inventory at its first and second login, and what the second login adds.
SCENARIOS = {
    "clean": ([*STORE_APPS], [*STORE_APPS], {}),
    "remote control during a call": (
        [*STORE_APPS, ANYDESK],
        [*STORE_APPS, ANYDESK],
        {"call": {"active_call": True}, "app_activity": {"running_packages": [ANYDESK.package_name]}},
    ),
    "split install": ([*STORE_APPS], [*STORE_APPS, PAYLOAD], {}),
    "listed app": ([*STORE_APPS, LISTED], [*STORE_APPS, LISTED], {}),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_a_device_sending_its_digest_gets_the_verdict_its_list_would_have(
    gateway: RunningGateway, client: MtsgClient, scenario: str
) -> None:
    first_apps, second_apps, second_fields = SCENARIOS[scenario]
    if scenario == "listed app":
        await client.blocklist.AddEntry(package_entry_request(LISTED.package_name, "FakeProsecutor"), timeout=10)
    listed_customer, by_digest = f"c-{uuid.uuid4().hex[:8]}", MtsgClient(gateway.target, timeout=30)
    digest_customer = f"c-{uuid.uuid4().hex[:8]}"
    async with by_digest:
        for apps, fields in ((first_apps, {}), (second_apps, second_fields)):
            as_listed = await client.check_login(_login(listed_customer, "dev-" + listed_customer, apps, **fields))
            sent = _login(digest_customer, "dev-" + digest_customer, apps, **fields)
            as_digest = await by_digest.check_login_by_digest(sent)
            assert as_digest.inventory_digest == inventory_digest(sent.installed_apps)
            assert as_listed.inventory_digest == ""  # no digest sent, none claimed
            assert _outcome(as_digest) == _outcome(as_listed)
        memory_before = _lookups(gateway, "memory")
        third = _login(digest_customer, "dev-" + digest_customer, second_apps, **second_fields)
        as_digest = await by_digest.check_login(_digest_only(third))
        as_listed = await client.check_login(
            _login(listed_customer, "dev-" + listed_customer, second_apps, **second_fields)
        )
    assert _outcome(as_digest) == _outcome(as_listed)
    assert _lookups(gateway, "memory") == memory_before + 1  # the third login's apps came from memory
    expected = {
        "clean": common_pb2.ACTION_ALLOW,
        "remote control during a call": common_pb2.ACTION_FREEZE,
        "split install": common_pb2.ACTION_STEP_UP,
        "listed app": common_pb2.ACTION_FREEZE,
    }
    if scenario != "split install":  # the third login installs nothing new: ALLOW, with and without digest
        assert as_digest.action == expected[scenario]


async def test_an_app_listed_after_the_inventory_was_stored_freezes_the_next_digest_only_login(
    client: MtsgClient,
) -> None:
    customer, device = f"c-{uuid.uuid4().hex[:8]}", f"d-{uuid.uuid4().hex[:8]}"
    apps = [*STORE_APPS, app("com.fake.kisa", label="KISA Security")]
    first = await client.check_login_by_digest(_login(customer, device, apps))
    assert first.action == common_pb2.ACTION_ALLOW
    assert (await client.check_login(_digest_only(_login(customer, device, apps)))).action == common_pb2.ACTION_ALLOW

    await client.blocklist.AddEntry(package_entry_request("com.fake.kisa", "FakeKisa"), timeout=10)
    frozen = await client.check_login(_digest_only(_login(customer, device, apps)))
    assert frozen.action == common_pb2.ACTION_FREEZE
    assert frozen.scenario_id == "malicious-app"
    reason = next(reason for reason in frozen.reasons if reason.code.startswith("MALICIOUS_APP"))
    assert reason.message == "The voice-phishing app FakeKisa is installed (com.fake.kisa)."
    with_list = await client.check_login(_login(customer, device, apps))  # the same device, its list sent
    assert _outcome(frozen) == _outcome(with_list)


async def _refused_inventory(client: MtsgClient, login: telemetry_pb2.LoginTelemetry) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.check_login(login, request_id=uuid.uuid4().hex)
    return refused.value


async def test_an_unknown_digest_is_refused_with_the_reason_the_sdk_acts_on_and_nothing_is_stored(
    gateway: RunningGateway, client: MtsgClient
) -> None:
    login = _login(f"c-{uuid.uuid4().hex[:8]}", f"d-{uuid.uuid4().hex[:8]}", STORE_APPS)
    verdicts_before = await gateway.store.count_rows("verdicts")
    refused = await _refused_inventory(client, _digest_only(login))  # a new device: nothing held
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(refused) == "INVENTORY_UNKNOWN"
    assert "send the same request again with installed_apps" in (refused.details() or "")
    assert await gateway.store.count_rows("verdicts") == verdicts_before
    # The nonce is still unused: the same login sent again with its list is decided.
    resent = with_inventory_digest(login)
    decided = await client.check_login(resent)
    assert decided.action == common_pb2.ACTION_ALLOW
    assert decided.inventory_digest == resent.inventory_digest
    assert await gateway.store.count_rows("verdicts") == verdicts_before + 1


async def test_the_sdk_sends_its_list_again_when_the_gateway_no_longer_holds_its_digest(
    gateway: RunningGateway, client: MtsgClient
) -> None:
    customer, device = f"c-{uuid.uuid4().hex[:8]}", f"d-{uuid.uuid4().hex[:8]}"
    login = _login(customer, device, STORE_APPS)
    await client.check_login_by_digest(login)
    held = client.held_digests[device]
    assert held == inventory_digest(login.installed_apps)
    assert await gateway.store.load_held_apps(device, held) is not None

    # Retention forgets the device (its history is older than the configured days).
    policy = RetentionPolicy(nonce_seconds=600, device_history_days=1)
    removed = await gateway.store.purge(policy, time.time() + 2 * DAY)
    assert removed["device_inventories"] >= 1
    refused = await _refused_inventory(client, _digest_only(again(login)))
    assert (refused.code(), error_reason(refused)) == (grpc.StatusCode.FAILED_PRECONDITION, "INVENTORY_UNKNOWN")

    unknown_before = _lookups(gateway, "unknown")
    verdict = await client.check_login_by_digest(again(login), request_id=uuid.uuid4().hex)
    assert verdict.action == common_pb2.ACTION_ALLOW and verdict.inventory_digest == held
    assert _lookups(gateway, "unknown") == unknown_before + 1  # refused once, then sent with its list
    assert await gateway.store.load_held_apps(device, held) is not None


async def test_a_list_that_does_not_hash_to_its_digest_is_invalid_and_nothing_is_stored(
    gateway: RunningGateway, client: MtsgClient
) -> None:
    login = with_inventory_digest(_login(f"c-{uuid.uuid4().hex[:8]}", f"d-{uuid.uuid4().hex[:8]}", STORE_APPS))
    login.installed_apps[0].label = "KakaoTalk (changed after hashing)"
    verdicts_before = await gateway.store.count_rows("verdicts")
    refused = await _refused_inventory(client, login)
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    ((path, description),) = field_violations(refused)
    assert path == "telemetry.inventory_digest"
    assert inventory_digest(login.installed_apps) in description
    assert await gateway.store.count_rows("verdicts") == verdicts_before

    login.inventory_digest = login.inventory_digest.upper()
    refused = await _refused_inventory(client, login)
    assert field_violations(refused)[0] == (
        "telemetry.inventory_digest",
        "must be 64 lower-case hex digits: the SHA-256 of the canonical inventory (docs/INVENTORY_DIGEST.md)",
    )
    login.inventory_digest = ""
    login.app_activity.running_packages.append("not a package")
    refused = await _refused_inventory(client, login)
    assert field_violations(refused)[0][0] == "telemetry.app_activity.running_packages[0]"
    assert await gateway.store.count_rows("verdicts") == verdicts_before


async def test_a_digest_another_device_holds_is_unknown_to_this_one(
    gateway: RunningGateway, client: MtsgClient
) -> None:
    customer = f"c-{uuid.uuid4().hex[:8]}"
    owner = _login(customer, f"d-{uuid.uuid4().hex[:8]}", STORE_APPS)
    await client.check_login_by_digest(owner)
    other_device = f"d-{uuid.uuid4().hex[:8]}"
    await client.check_login_by_digest(_login(customer, other_device, [*STORE_APPS, ANYDESK]))
    verdicts_before = await gateway.store.count_rows("verdicts")

    borrowed = _digest_only(_login(customer, other_device, STORE_APPS))  # the owner's digest, from another phone
    assert borrowed.inventory_digest == client.held_digests[owner.device_id]
    refused = await _refused_inventory(client, borrowed)
    assert error_reason(refused) == "INVENTORY_UNKNOWN"
    assert "holds no inventory" in (refused.details() or "")
    assert client.held_digests[owner.device_id] not in (refused.details() or "")  # nothing about what is held
    assert await gateway.store.count_rows("verdicts") == verdicts_before


async def test_a_replayed_digest_only_login_is_refused_and_its_retry_gets_the_same_verdict(client: MtsgClient) -> None:
    customer, device = f"c-{uuid.uuid4().hex[:8]}", f"d-{uuid.uuid4().hex[:8]}"
    await client.check_login_by_digest(_login(customer, device, STORE_APPS))
    short = _digest_only(_login(customer, device, STORE_APPS))
    first = await client.check_login(short, request_id="digest-first")
    assert (await client.check_login(short, request_id="digest-first")).verdict_id == first.verdict_id
    replayed = await _refused_inventory(client, short)
    assert (replayed.code(), error_reason(replayed)) == (grpc.StatusCode.INVALID_ARGUMENT, "NONCE_REUSED")


async def test_a_digest_stored_through_one_replica_is_served_by_another(tmp_path: Path, postgres_url: str) -> None:
    first = await start_gateway(gateway_config(tmp_path / "a", postgres_url, metrics=True))
    second = await start_gateway(gateway_config(tmp_path / "b", postgres_url, metrics=True))
    try:
        customer, device = f"c-{uuid.uuid4().hex[:8]}", f"d-{uuid.uuid4().hex[:8]}"
        apps = [*STORE_APPS, ANYDESK]
        async with MtsgClient(first.target) as one, MtsgClient(second.target) as other:
            stored = await one.check_login_by_digest(_login(customer, device, apps))
            running = _login(customer, device, apps, call={"active_call": True})
            running.installed_apps[-1].running = True
            verdict = await other.check_login(_digest_only(running))
        assert verdict.inventory_digest == stored.inventory_digest
        assert (verdict.action, verdict.scenario_id) == (common_pb2.ACTION_FREEZE, "remote-control-during-call")
        assert _lookups(second, "store") == 1 and _lookups(second, "memory") == 0
    finally:
        await first.stop(grace=1.0)
        await second.stop(grace=1.0)
