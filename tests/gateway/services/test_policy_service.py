"""PolicyService over a real server: apply, validate, versions, rollback, and live swaps under load."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from gateway.client import MtsgClient, field_violations
from gateway.generated.mtsg.v1 import common_pb2, policy_service_pb2, telemetry_pb2
from gateway.server.start import RunningGateway
from tests.helpers import app, telemetry
from tests.signals.shipped import DEFAULT_POLICY_TEXT

# A policy with one scenario: any active call steps up with OTP.
CALL_STEPS_UP = """
name = "calls"
[[scenarios]]
id = "any-call"
description = "Any active call asks for an OTP."
action = "step_up"
step_up_method = "otp"
score = 40
when = { code = "ACTIVE_CALL" }
"""


def calling_login() -> telemetry_pb2.LoginTelemetry:
    return telemetry(call={"active_call": True, "caller_in_contacts": True})


async def test_the_shipped_policy_is_version_1_and_decides(client: MtsgClient, gateway: RunningGateway) -> None:
    current = await client.policy.GetPolicy(policy_service_pb2.GetPolicyRequest(), timeout=10)
    assert current.policy.version == "1"
    assert current.policy.document == DEFAULT_POLICY_TEXT
    assert current.policy.applied_by == "mtsg:shipped-default"
    verdict = await client.check_login(
        telemetry(
            installed_apps=[app("com.anydesk.anydeskandroid", running=True)],
            call={"active_call": True, "caller_in_contacts": False},
        )
    )
    assert (verdict.action, verdict.policy_version) == (common_pb2.ACTION_FREEZE, "1")
    assert [(f.scenario_id, f.deciding) for f in verdict.fired_scenarios] == [
        ("remote-control-during-call", True),
        ("remote-control-active", False),
    ]
    assert verdict.explanation.startswith("FREEZE by scenario remote-control-during-call")


async def test_apply_changes_the_next_verdict_and_rollback_restores(client: MtsgClient) -> None:
    before = await client.check_login(calling_login())
    assert before.action == common_pb2.ACTION_ALLOW

    applied = await client.policy.ApplyPolicy(
        policy_service_pb2.ApplyPolicyRequest(request_id="apply-1", document=CALL_STEPS_UP, comment="trial"),
        timeout=10,
    )
    assert applied.policy.version == "2"
    after = await client.check_login(calling_login())
    assert (after.action, after.scenario_id, after.policy_version) == (common_pb2.ACTION_STEP_UP, "any-call", "2")
    assert after.step_up_method == common_pb2.STEP_UP_METHOD_OTP

    # The same request again makes no third version; the same key with another document is refused.
    again = await client.policy.ApplyPolicy(
        policy_service_pb2.ApplyPolicyRequest(request_id="apply-1", document=CALL_STEPS_UP, comment="trial"),
        timeout=10,
    )
    assert again.policy.version == "2"
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await client.policy.ApplyPolicy(
            policy_service_pb2.ApplyPolicyRequest(request_id="apply-1", document=DEFAULT_POLICY_TEXT), timeout=10
        )
    assert reused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(reused.value)[0][0] == "request_id"

    rolled = await client.policy.RollbackPolicy(
        policy_service_pb2.RollbackPolicyRequest(request_id="rb-1", version="1", comment="trial over"), timeout=10
    )
    assert (rolled.policy.version, rolled.policy.restored_version) == ("3", "1")
    assert (await client.check_login(calling_login())).action == common_pb2.ACTION_ALLOW

    listed = await client.policy.ListPolicyVersions(
        policy_service_pb2.ListPolicyVersionsRequest(page_size=2), timeout=10
    )
    assert [p.version for p in listed.policies] == ["3", "2"]
    assert all(p.document == "" for p in listed.policies)  # listing leaves documents out
    rest = await client.policy.ListPolicyVersions(
        policy_service_pb2.ListPolicyVersionsRequest(page_size=2, page_token=listed.next_page_token), timeout=10
    )
    assert [p.version for p in rest.policies] == ["1"] and rest.next_page_token == ""
    old = await client.policy.GetPolicy(policy_service_pb2.GetPolicyRequest(version="2"), timeout=10)
    assert old.policy.document == CALL_STEPS_UP and old.policy.comment == "trial"


async def test_validate_and_apply_warn_of_high_findings_left_alone_and_an_identical_document_makes_no_version(
    client: MtsgClient,
) -> None:
    checked = await client.policy.ValidatePolicy(
        policy_service_pb2.ValidatePolicyRequest(document=CALL_STEPS_UP), timeout=10
    )
    assert checked.valid
    warned = {warning.message.split(" ")[0] for warning in checked.warnings}
    assert {"IMPOSSIBLE_TRAVEL", "BANK_APP_TAMPERED", "REMOTE_CONTROL_APP_ACTIVE"} <= warned
    shipped = await client.policy.ValidatePolicy(
        policy_service_pb2.ValidatePolicyRequest(document=DEFAULT_POLICY_TEXT), timeout=10
    )
    assert shipped.valid and list(shipped.warnings) == []

    applied = await client.policy.ApplyPolicy(
        policy_service_pb2.ApplyPolicyRequest(document=CALL_STEPS_UP, comment="calls only"), timeout=10
    )
    assert (applied.policy.version, applied.already_in_force) == ("2", False)
    assert [w.message for w in applied.warnings] == [w.message for w in checked.warnings]
    same = await client.policy.ApplyPolicy(
        policy_service_pb2.ApplyPolicyRequest(document=CALL_STEPS_UP, comment="once more"), timeout=10
    )
    assert (same.policy.version, same.already_in_force, same.policy.comment) == ("2", True, "calls only")
    listed = await client.policy.ListPolicyVersions(policy_service_pb2.ListPolicyVersionsRequest(), timeout=10)
    assert [p.version for p in listed.policies] == ["2", "1"]


async def test_a_bad_policy_is_refused_with_every_problem_and_nothing_changes(client: MtsgClient) -> None:
    bad = CALL_STEPS_UP.replace('"ACTIVE_CALL"', '"ACTIVE_CALLS"').replace("score = 40", "score = 400")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.policy.ApplyPolicy(policy_service_pb2.ApplyPolicyRequest(document=bad), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    descriptions = [description for _, description in field_violations(refused.value)]
    assert any("scenarios[0].score" in d for d in descriptions)
    assert any("unknown finding code 'ACTIVE_CALLS'" in d for d in descriptions)
    current = await client.policy.GetPolicy(policy_service_pb2.GetPolicyRequest(), timeout=10)
    assert current.policy.version == "1"

    checked = await client.policy.ValidatePolicy(policy_service_pb2.ValidatePolicyRequest(document=bad), timeout=10)
    assert not checked.valid
    assert {p.location for p in checked.problems} == {"scenarios[0].score", "scenarios[0].when.code"}
    fine = await client.policy.ValidatePolicy(
        policy_service_pb2.ValidatePolicyRequest(document=CALL_STEPS_UP), timeout=10
    )
    assert fine.valid and not fine.problems


async def test_a_document_nested_too_deeply_is_refused_not_internal(client: MtsgClient) -> None:
    deep = CALL_STEPS_UP + "\n[extra]\nx = " + "[" * 100_000 + "]" * 100_000 + "\n"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.policy.ApplyPolicy(policy_service_pb2.ApplyPolicyRequest(document=deep), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(refused.value) == [("document", "not readable TOML: nested too deeply")]
    checked = await client.policy.ValidatePolicy(policy_service_pb2.ValidatePolicyRequest(document=deep), timeout=10)
    assert not checked.valid


async def test_a_comment_with_a_nul_is_refused_and_the_policy_stays(client: MtsgClient) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.policy.ApplyPolicy(
            policy_service_pb2.ApplyPolicyRequest(document=CALL_STEPS_UP, comment="tighter\x00"), timeout=10
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in field_violations(refused.value)] == ["comment"]
    current = await client.policy.GetPolicy(policy_service_pb2.GetPolicyRequest(), timeout=10)
    assert current.policy.version == "1"


async def test_a_policy_quoting_a_huge_value_is_refused_with_its_problems_readable(client: MtsgClient) -> None:
    """The problem quotes the unknown code; whole, it would overflow the trailers the error travels in."""
    bad = CALL_STEPS_UP.replace('"ACTIVE_CALL"', '"' + "ACTIVE_CALL_" * 10_000 + '"')
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.policy.ApplyPolicy(policy_service_pb2.ApplyPolicyRequest(document=bad), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(refused.value)
    assert [field for field, _ in violations] == ["document"]
    (description,) = [description for _, description in violations]
    assert description.startswith("scenarios[0].when.code: unknown finding code 'ACTIVE_CALL_ACTIVE_CALL_")
    assert description.endswith("…")
    assert len(description.encode()) <= 256


@pytest.mark.parametrize(
    ("call", "field"),
    [
        ("ApplyPolicy", "document"),  # empty
        ("ApplyPolicyHuge", "document"),
        ("ApplyPolicyBadKey", "request_id"),
        ("RollbackPolicy", "version"),
        ("ListPolicyVersions", "page_size"),
        ("ListPolicyVersionsToken", "page_token"),
    ],
)
async def test_bad_requests_name_the_field(client: MtsgClient, call: str, field: str) -> None:
    stub = client.policy
    requests = {
        "ApplyPolicy": lambda: stub.ApplyPolicy(policy_service_pb2.ApplyPolicyRequest(document="  "), timeout=10),
        "ApplyPolicyHuge": lambda: stub.ApplyPolicy(
            policy_service_pb2.ApplyPolicyRequest(document="#" * (600 * 1024)), timeout=10
        ),
        "ApplyPolicyBadKey": lambda: stub.ApplyPolicy(
            policy_service_pb2.ApplyPolicyRequest(request_id="a b", document=CALL_STEPS_UP), timeout=10
        ),
        "RollbackPolicy": lambda: stub.RollbackPolicy(policy_service_pb2.RollbackPolicyRequest(), timeout=10),
        "ListPolicyVersions": lambda: stub.ListPolicyVersions(
            policy_service_pb2.ListPolicyVersionsRequest(page_size=1000), timeout=10
        ),
        "ListPolicyVersionsToken": lambda: stub.ListPolicyVersions(
            policy_service_pb2.ListPolicyVersionsRequest(page_token="x"), timeout=10
        ),
    }
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await requests[call]()
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [name for name, _ in field_violations(refused.value)]


@pytest.mark.parametrize("version", ["99", "abc", "-1", "0"])
async def test_unknown_versions_are_not_found(client: MtsgClient, version: str) -> None:
    for call in (
        client.policy.GetPolicy(policy_service_pb2.GetPolicyRequest(version=version), timeout=10),
        client.policy.RollbackPolicy(policy_service_pb2.RollbackPolicyRequest(version=version), timeout=10),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await call
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_policy_swaps_under_load_fail_no_call(client: MtsgClient) -> None:
    """Logins keep flowing while the policy flips back and forth; every call succeeds with one whole policy."""
    stop = asyncio.Event()
    results: list[tuple[int, str]] = []

    async def logins() -> None:
        while not stop.is_set():
            verdict = await client.check_login(calling_login())
            results.append((verdict.action, verdict.policy_version))

    workers = [asyncio.create_task(logins()) for _ in range(4)]
    for round_number in range(4):
        document = CALL_STEPS_UP if round_number % 2 == 0 else DEFAULT_POLICY_TEXT
        await client.policy.ApplyPolicy(policy_service_pb2.ApplyPolicyRequest(document=document), timeout=10)
        await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(*workers)  # any failed call raises here
    assert len(results) > 20
    steps_up_versions = {"2", "4"}
    for action, version in results:
        expected = common_pb2.ACTION_STEP_UP if version in steps_up_versions else common_pb2.ACTION_ALLOW
        assert action == expected, (action, version)
    assert {version for _, version in results} >= {"2", "3", "4", "5"}
