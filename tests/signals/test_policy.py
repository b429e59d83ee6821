"""The first policy: which scenario decides, ties, scores and explanations."""

from __future__ import annotations

import pytest

from signals.conditions import Select
from signals.findings import Finding, Severity
from signals.policy import Action, Policy, Scenario, StepUpMethod, decide
from tests.signals.shipped import DEFAULT_POLICY

RC_ACTIVE = Finding("REMOTE_CONTROL_APP_ACTIVE", Severity.HIGH, "AnyDesk is running")
RC_INSTALLED = Finding("REMOTE_CONTROL_APP_INSTALLED", Severity.MEDIUM, "AnyDesk is installed")
SCREEN = Finding("SCREEN_SHARED", Severity.HIGH, "the screen is being shared")
CALL = Finding("ACTIVE_CALL", Severity.MEDIUM, "a phone call is active")
NEW = Finding("NEW_DEVICE", Severity.LOW, "the login comes from a device never seen for this customer")
PHONE = Finding(
    "PHONE_NUMBER_CHANGED_RECENTLY",
    Severity.MEDIUM,
    "the customer's phone number was changed today",
    {"days_ago": "0.2"},
)
ROOT = Finding("DEVICE_ROOTED", Severity.MEDIUM, "the device is rooted or jailbroken")
TAMPERED = Finding("BANK_APP_TAMPERED", Severity.CRITICAL, "the banking app has been tampered with")


@pytest.mark.parametrize(
    ("findings", "action", "scenario", "method"),
    [
        ([], Action.ALLOW, "", StepUpMethod.NONE),
        ([NEW], Action.ALLOW, "", StepUpMethod.NONE),
        ([CALL], Action.ALLOW, "", StepUpMethod.NONE),
        ([RC_ACTIVE, CALL], Action.FREEZE, "remote-control-during-call", StepUpMethod.NONE),
        ([SCREEN, CALL, NEW], Action.FREEZE, "remote-control-during-call", StepUpMethod.NONE),
        ([RC_ACTIVE], Action.STEP_UP, "remote-control-active", StepUpMethod.FACE),
        ([RC_INSTALLED, CALL], Action.STEP_UP, "remote-control-installed-during-call", StepUpMethod.FACE),
        ([RC_INSTALLED], Action.ALLOW, "", StepUpMethod.NONE),
        ([PHONE, NEW], Action.STEP_UP, "phone-changed-new-device", StepUpMethod.CALLBACK_PREVIOUS_NUMBER),
        ([PHONE], Action.ALLOW, "", StepUpMethod.NONE),
        ([ROOT, NEW], Action.STEP_UP, "compromised-device-with-other-signs", StepUpMethod.OTP),
        ([ROOT], Action.ALLOW, "", StepUpMethod.NONE),
        ([TAMPERED], Action.STEP_UP, "bank-app-tampered", StepUpMethod.FACE),
        # Several STEP_UP scenarios: the first in policy order decides.
        (
            [PHONE, NEW, ROOT, RC_ACTIVE],
            Action.STEP_UP,
            "phone-changed-new-device",
            StepUpMethod.CALLBACK_PREVIOUS_NUMBER,
        ),
        # FREEZE beats any STEP_UP, wherever it stands.
        ([PHONE, NEW, RC_ACTIVE, CALL], Action.FREEZE, "remote-control-during-call", StepUpMethod.NONE),
    ],
)
def test_default_policy(findings: list[Finding], action: Action, scenario: str, method: StepUpMethod) -> None:
    decision = decide(findings, DEFAULT_POLICY)
    assert (decision.action, decision.scenario_id, decision.step_up_method) == (action, scenario, method)
    assert decision.policy_version == "1"
    assert [reason.finding for reason in decision.reasons] == sorted(findings, key=lambda f: f.severity, reverse=True)


def test_freeze_explains_itself_in_one_sentence_and_names_the_scenario_on_its_reasons() -> None:
    decision = decide([NEW, CALL, RC_ACTIVE], DEFAULT_POLICY)
    assert decision.summary == "AnyDesk is running while a phone call is active."
    by_code = {reason.finding.code: reason.scenario_id for reason in decision.reasons}
    assert by_code == {
        "REMOTE_CONTROL_APP_ACTIVE": "remote-control-during-call",
        "ACTIVE_CALL": "remote-control-during-call",
        "NEW_DEVICE": "",
    }
    assert len(decision.freeze_scopes) == 3


def test_the_score_is_the_deciding_actions_score_and_an_allow_stays_below_every_acting_score() -> None:
    assert decide([], DEFAULT_POLICY).risk_score == 0
    assert decide([NEW], DEFAULT_POLICY).risk_score == 10
    assert decide([RC_ACTIVE, CALL], DEFAULT_POLICY).risk_score == 95
    # remote-control-active (60) and bank-app-tampered (90) fire beside the freeze: the freeze's score speaks.
    assert decide([RC_ACTIVE, SCREEN, ROOT, TAMPERED, CALL], DEFAULT_POLICY).risk_score == 95
    assert decide([TAMPERED, RC_ACTIVE], DEFAULT_POLICY).risk_score == 90
    # Four findings no scenario acts on weigh 25 each, but an ALLOW never reads as risky as the
    # lowest-scoring acting scenario of the policy (60 in the shipped one).
    unacted = [_finding(code, Severity.MEDIUM) for code in ("UNUSUAL_LOCATION", "NEW_COUNTRY", "MOCK_LOCATION")]
    unacted.append(PHONE)
    assert decide(unacted, DEFAULT_POLICY).action is Action.ALLOW
    assert decide(unacted, DEFAULT_POLICY).risk_score == 59


def test_an_allow_with_findings_names_them_in_its_summary() -> None:
    mock = Finding("MOCK_LOCATION", Severity.MEDIUM, "a mock-location provider is active")
    decision = decide([_finding("VPN_ACTIVE", Severity.LOW), RC_INSTALLED, mock, PHONE], DEFAULT_POLICY)
    assert decision.summary == (
        "No scenario acts on what was found: AnyDesk is installed, a mock-location provider is active, "
        "the customer's phone number was changed today and 1 more."
    )
    assert decide([RC_INSTALLED], DEFAULT_POLICY).summary == "No scenario acts on what was found: AnyDesk is installed."


def test_ties_between_equal_actions_go_to_the_first_listed_scenario() -> None:
    call = Select(codes=frozenset({"ACTIVE_CALL"}))
    first = Scenario("first", "", call, Action.STEP_UP, StepUpMethod.OTP)
    second = Scenario("second", "", call, Action.STEP_UP, StepUpMethod.FACE)
    assert decide([CALL], Policy("p", (first, second))).scenario_id == "first"
    assert decide([CALL], Policy("p", (second, first))).scenario_id == "second"


def _finding(code: str, severity: Severity = Severity.HIGH, **evidence: str) -> Finding:
    return Finding(code, severity, code.lower(), evidence)


@pytest.mark.parametrize(
    ("findings", "scenario"),
    [
        # malicious-app: the four money-stealing categories freeze; others step up.
        ([_finding("MALICIOUS_APP_VOICE_PHISHING", Severity.CRITICAL)], "malicious-app"),
        ([_finding("MALICIOUS_APP_BANKER_TROJAN", Severity.LOW)], "malicious-app"),
        # A coached victim passes a face check: only a freeze stops a fake bank app's transfer.
        ([_finding("MALICIOUS_APP_FAKE_BANK_APP")], "malicious-app"),
        ([_finding("MALICIOUS_APP_STALKERWARE")], "other-malicious-app"),
        ([_finding("MALICIOUS_APP_SPYWARE")], "other-malicious-app"),
        # phone-changed-new-device: within 7 days, inclusive.
        ([_finding("PHONE_NUMBER_CHANGED_RECENTLY", days_ago="7.0"), NEW], "phone-changed-new-device"),
        ([_finding("PHONE_NUMBER_CHANGED_RECENTLY", days_ago="7.1"), NEW], ""),
        # sideloaded-risky-app-since-last-login: only the HIGH (dangerous capability) variant.
        (
            [_finding("SIDELOADED_APP_INSTALLED_SINCE_LAST_LOGIN", Severity.HIGH)],
            "sideloaded-risky-app-since-last-login",
        ),
        ([_finding("SIDELOADED_APP_INSTALLED_SINCE_LAST_LOGIN", Severity.MEDIUM)], ""),
        # new-device-unusual-location: any of the three location findings with a new device.
        ([NEW, _finding("UNUSUAL_LOCATION", Severity.MEDIUM)], "new-device-unusual-location"),
        # impossible-travel acts alone, on a known device too; with a new device it is listed first.
        ([NEW, _finding("IMPOSSIBLE_TRAVEL")], "impossible-travel"),
        ([_finding("IMPOSSIBLE_TRAVEL", speed_kmh="2000000", distance_km="8127")], "impossible-travel"),
        ([NEW, _finding("NEW_COUNTRY", Severity.MEDIUM)], "new-device-unusual-location"),
        ([_finding("UNUSUAL_LOCATION", Severity.MEDIUM)], ""),
        # compromised-device-with-other-signs: another finding of at least LOW; INFO does not count.
        ([ROOT, _finding("ADB_ENABLED", Severity.LOW)], "compromised-device-with-other-signs"),
        ([ROOT, _finding("VPN_ACTIVE", Severity.LOW)], "compromised-device-with-other-signs"),
        ([ROOT, _finding("DEVELOPER_MODE", Severity.INFO)], ""),
        # attack-tooling: a hooking framework, a debugger, an emulator or a failed attestation, alone.
        ([ROOT, _finding("HOOKING_FRAMEWORK")], "attack-tooling"),
        ([_finding("HOOKING_FRAMEWORK")], "attack-tooling"),
        ([_finding("DEVICE_EMULATOR")], "attack-tooling"),
        ([_finding("ATTESTATION_FAILED", Severity.MEDIUM)], ""),
        ([_finding("ATTESTATION_FAILED")], "attack-tooling"),
        # A sideloaded app holding two stealing capabilities freezes, on a first login too; one steps up
        # by video call; any such app during a call freezes.
        ([NEW, _finding("SIDELOADED_RISKY_APP", capability_count="2")], "sideloaded-stealer"),
        ([_finding("SIDELOADED_RISKY_APP", capability_count="1")], "sideloaded-risky-app"),
        ([_finding("SIDELOADED_RISKY_APP", capability_count="1"), CALL], "sideloaded-risky-app-during-call"),
        ([_finding("SIDELOADED_RISKY_APP", Severity.MEDIUM, capability_count="1")], ""),
        # A device many other customers used recently steps up; fewer is the shadow trial's.
        ([_finding("SHARED_DEVICE", Severity.HIGH, other_customers="4")], "device-shared-by-many"),
        # shared-device runs in shadow: reported, never deciding.
        ([_finding("SHARED_DEVICE", Severity.MEDIUM, other_customers="3")], ""),
    ],
)
def test_each_shipped_scenario_at_its_boundaries(findings: list[Finding], scenario: str) -> None:
    assert decide(findings, DEFAULT_POLICY).scenario_id == scenario


def test_the_shared_device_shadow_scenario_is_reported() -> None:
    decision = decide([_finding("SHARED_DEVICE", Severity.MEDIUM)], DEFAULT_POLICY)
    assert [(s.scenario_id, s.action) for s in decision.shadow] == [("shared-device", Action.STEP_UP)]
