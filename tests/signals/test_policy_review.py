"""Policy review: HIGH findings no scenario acts on, and scores that contradict actions."""

from __future__ import annotations

from signals.catalog import FINDING_KINDS
from signals.findings import Severity
from signals.policy_document import read_policy
from signals.policy_review import acts_alone, review_policy, unacted_findings
from tests.signals.shipped import DEFAULT_POLICY


def _policy(*scenarios: str) -> str:
    return "\n".join(f"[[scenarios]]\n{body}\n" for body in scenarios)


def _face_check(scenario_id: str, score: int, when: str, extra: str = "") -> str:
    """A face-check step-up scenario's body."""
    return (
        f'id = "{scenario_id}"\ndescription = "d"\naction = "step_up"\nstep_up_method = "face"\n'
        f"score = {score}\n{extra}when = {when}"
    )


FREEZE_ON_REMOTE_CONTROL_DURING_CALL = """id = "rc-call"
description = "d"
action = "freeze"
freeze_scopes = ["transfers"]
score = 95
when.all = [{ code = "REMOTE_CONTROL_APP_ACTIVE" }, { code = "ACTIVE_CALL" }]"""


def test_the_shipped_policy_acts_on_every_high_and_critical_finding_and_its_scores_rise_with_its_actions() -> None:
    assert review_policy(DEFAULT_POLICY) == []


def test_a_high_finding_that_only_counts_together_with_another_is_named() -> None:
    policy = read_policy(_policy(FREEZE_ON_REMOTE_CONTROL_DURING_CALL), "1")
    missed = dict(unacted_findings(policy))
    assert missed["REMOTE_CONTROL_APP_ACTIVE"] is Severity.HIGH
    assert missed["IMPOSSIBLE_TRAVEL"] is Severity.HIGH
    assert missed["BANK_APP_TAMPERED"] is Severity.CRITICAL
    assert "ACTIVE_CALL" not in missed  # never HIGH: a call alone is no reason to act
    texts = [str(warning) for warning in review_policy(policy)]
    assert (
        "scenarios: IMPOSSIBLE_TRAVEL (HIGH) makes no active scenario act by itself: "
        "a login with only this finding is allowed"
    ) in texts


def test_a_shadow_or_allow_scenario_does_not_count_as_acting() -> None:
    shadow = _face_check("travel", 70, '{ code = "IMPOSSIBLE_TRAVEL" }', 'mode = "shadow"\n')
    allow = shadow.replace('mode = "shadow"\n', "").replace(
        'action = "step_up"\nstep_up_method = "face"', 'action = "allow"'
    )
    for body in (shadow, allow):
        policy = read_policy(_policy(FREEZE_ON_REMOTE_CONTROL_DURING_CALL, body), "1")
        assert "IMPOSSIBLE_TRAVEL" in dict(unacted_findings(policy))


def test_a_threshold_the_finding_can_reach_counts_as_acting() -> None:
    kind = FINDING_KINDS["IMPOSSIBLE_TRAVEL"]
    fast = read_policy(
        _policy(
            _face_check(
                "fast",
                70,
                '{ code = "IMPOSSIBLE_TRAVEL", at_least = { speed_kmh = 5000 }, at_most = { distance_km = 2000 } }',
            )
        ),
        "1",
    )
    assert acts_alone(fast.scenarios[0], kind, Severity.HIGH)


def test_a_freeze_scoring_no_higher_than_a_step_up_is_named() -> None:
    step_up = _face_check("tampered", 96, '{ code = "BANK_APP_TAMPERED" }')
    policy = read_policy(_policy(FREEZE_ON_REMOTE_CONTROL_DURING_CALL, step_up), "1")
    scores = [str(warning) for warning in review_policy(policy) if warning.location.endswith(".score")]
    assert scores == [
        "scenarios[1].score: tampered (STEP_UP) scores 96, not below rc-call (FREEZE, 95): "
        "a FREEZE verdict would read as no riskier than a STEP_UP"
    ]
