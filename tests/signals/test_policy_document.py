"""The policy document: what it accepts, and every way it refuses a bad one."""

from __future__ import annotations

import pytest

from signals.findings import Finding, Severity
from signals.policy import Action, FreezeScope, Mode, StepUpMethod, decide
from signals.policy_document import PolicyError, policy_problems, read_policy
from tests.signals.shipped import DEFAULT_POLICY, DEFAULT_POLICY_TEXT


def scenario(when: str, *, action: str = "step_up", extra: str = "", scenario_id: str = "s") -> str:
    method = 'step_up_method = "otp"\n' if action == "step_up" else ""
    scopes = 'freeze_scopes = ["transfers"]\n' if action == "freeze" else ""
    return (
        f'[[scenarios]]\nid = "{scenario_id}"\ndescription = "d"\naction = "{action}"\n'
        f"{method}{scopes}{extra}when = {when}\n"
    )


def problems(document: str) -> list[str]:
    return [str(problem) for problem in policy_problems(document)]


def test_the_shipped_policy_is_valid_and_has_a_shadow_scenario() -> None:
    assert policy_problems(DEFAULT_POLICY_TEXT) == []
    modes = {s.id: s.mode for s in DEFAULT_POLICY.scenarios}
    assert modes["shared-device"] is Mode.SHADOW
    assert sum(mode is Mode.ACTIVE for mode in modes.values()) == 16
    freeze = [s for s in DEFAULT_POLICY.scenarios if s.action is Action.FREEZE]
    assert {s.id for s in freeze} == {
        "malicious-app",
        "remote-control-during-call",
        "sideloaded-risky-app-during-call",
        "sideloaded-stealer",
    }
    assert all(set(s.freeze_scopes) == set(FreezeScope) for s in freeze)


def test_a_minimal_policy_reads() -> None:
    policy = read_policy(scenario('{ code = "ACTIVE_CALL" }'), "7")
    (only,) = policy.scenarios
    assert (only.id, only.action, only.step_up_method, only.mode, policy.version) == (
        "s",
        Action.STEP_UP,
        StepUpMethod.OTP,
        Mode.ACTIVE,
        "7",
    )


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("", "scenarios: a policy needs at least one [[scenarios]] table"),
        ("scenarios = [", "not valid TOML"),
        ("colour = 1\n" + scenario('{ code = "ACTIVE_CALL" }'), "colour: unknown key"),
        (scenario('{ code = "NOT_A_CODE" }'), "scenarios[0].when.code: unknown finding code 'NOT_A_CODE'"),
        (scenario('{ code = "NOPE_*" }'), "unknown finding code 'NOPE_*'"),
        (scenario('{ category = "weather" }'), "scenarios[0].when.category: unknown category 'weather'"),
        (
            scenario('{ code = "ACTIVE_CALL" }', action="block"),
            "scenarios[0].action: must be one of allow, freeze, step_up",
        ),
        (scenario("{ }"), "scenarios[0].when: a finding selector needs code, category or except_code"),
        (scenario("{ all = [] }"), "scenarios[0].when.all: must be a non-empty list of conditions"),
        (scenario('{ all = [{ code = "ACTIVE_CALL" }], code = "NEW_DEVICE" }'), "either one of all / any / not"),
        (scenario('"ACTIVE_CALL"'), "scenarios[0].when: must be a table"),
        (scenario('{ code = "ACTIVE_CALL", colour = 1 }'), "scenarios[0].when.colour: unknown key"),
        (
            scenario('{ code = "ACTIVE_CALL" }', extra="score = 101\n"),
            "scenarios[0].score: must be from 0 to 100, got 101",
        ),
        (
            scenario('{ code = "ACTIVE_CALL" }', extra='mode = "dry"\n'),
            "scenarios[0].mode: must be one of active, shadow",
        ),
        (
            scenario('{ code = "ACTIVE_CALL" }', extra='mode = "shadow"\n'),
            "every scenario is in shadow mode",
        ),
        (
            '[[scenarios]]\nid = "s"\ndescription = "d"\naction = "step_up"\nwhen = { code = "ACTIVE_CALL" }\n',
            "scenarios[0].step_up_method: is required for step_up",
        ),
        (
            '[[scenarios]]\nid = "s"\ndescription = "d"\naction = "freeze"\nwhen = { code = "ACTIVE_CALL" }\n',
            "scenarios[0].freeze_scopes: is required for freeze",
        ),
        (
            scenario('{ code = "ACTIVE_CALL" }', action="freeze", extra="").replace('["transfers"]', '["atm"]'),
            "scenarios[0].freeze_scopes[0]: must be one of card_loans, cash_withdrawal, transfers, got 'atm'",
        ),
        (
            scenario('{ code = "ACTIVE_CALL" }', action="allow", extra='step_up_method = "otp"\n'),
            "only a step_up scenario has a step-up method",
        ),
        (
            scenario('{ code = "ACTIVE_CALL" }', scenario_id="Bad Id"),
            "scenarios[0].id: must be 1-64 of a-z",
        ),
        (
            scenario('{ code = "ACTIVE_CALL" }') + scenario('{ code = "NEW_DEVICE" }'),
            "scenarios[1].id: duplicate id 's', first used by scenarios[0]",
        ),
        (
            "[detectors]\nunusual_location_km = -5\n" + scenario('{ code = "ACTIVE_CALL" }'),
            "detectors.unusual_location_km: must be from",
        ),
        ("[detectors]\nlocation_history_logins = 2.5\n" + scenario('{ code = "ACTIVE_CALL" }'), "must be an integer"),
        ("[detectors]\nradius = 5\n" + scenario('{ code = "ACTIVE_CALL" }'), "detectors.radius: unknown key"),
        # Thresholds no finding can reach.
        (
            scenario('{ code = "ACTIVE_CALL", min_severity = "critical" }'),
            "scenarios[0].when.min_severity: unreachable: these findings are never stronger than medium",
        ),
        (
            scenario('{ code = ["ACTIVE_CALL", "NEW_DEVICE"], min_count = 3 }'),
            "scenarios[0].when.min_count: unreachable: at most 2 of these findings can occur in one login",
        ),
        (
            scenario('{ code = "UNUSUAL_LOCATION", at_least = { distance_km = 30000 } }'),
            "scenarios[0].when.at_least.distance_km: unreachable: distance_km never exceeds 20015",
        ),
        (
            scenario(
                '{ code = "UNUSUAL_LOCATION", at_least = { distance_km = 500 }, at_most = { distance_km = 400 } }'
            ),
            "scenarios[0].when.at_most.distance_km: unreachable: below at_least.distance_km = 500",
        ),
        (
            scenario('{ code = "ACTIVE_CALL", at_least = { distance_km = 5 } }'),
            "scenarios[0].when.at_least.distance_km: is not a measure of ACTIVE_CALL",
        ),
        (
            scenario('{ code = "UNUSUAL_LOCATION", at_most = { distance_km = inf } }'),
            "scenarios[0].when.at_most.distance_km: must be a finite number, got inf",
        ),
        (
            scenario('{ code = "UNUSUAL_LOCATION", at_least = { distance_km = nan } }'),
            "scenarios[0].when.at_least.distance_km: must be a finite number, got nan",
        ),
        ("[detectors]\nunusual_location_km = inf\n" + scenario('{ code = "ACTIVE_CALL" }'), "must be a finite number"),
        (
            scenario('{ code = "ACTIVE_CALL", min_severity = "urgent" }'),
            "scenarios[0].when.min_severity: must be one of critical, high, info, low, medium",
        ),
        (
            scenario('{ code = "VPN_ACTIVE", category = "location" }'),
            "no finding has code VPN_ACTIVE in category location",
        ),
    ],
)
def test_bad_documents_are_refused_with_where_and_why(document: str, expected: str) -> None:
    found = problems(document)
    assert any(expected in problem for problem in found), found
    with pytest.raises(PolicyError):
        read_policy(document, "1")


def test_every_problem_is_listed_at_once() -> None:
    document = (
        scenario('{ code = "NOPE" }', action="block")
        + scenario('{ code = "ACTIVE_CALL", min_severity = "critical" }', scenario_id="s")
        + scenario('{ all = [{ code = "X1" }, { category = "nope" }] }', scenario_id="t")
    )
    found = problems(document)
    assert len(found) == 6, found
    assert {problem.split(":")[0] for problem in found} == {
        "scenarios[0].action",
        "scenarios[0].when.code",
        "scenarios[1].when.min_severity",
        "scenarios[1].id",
        "scenarios[2].when.all[0].code",
        "scenarios[2].when.all[1].category",
    }


def _f(code: str, severity: Severity = Severity.HIGH, **evidence: str) -> Finding:
    return Finding(code, severity, code.lower().replace("_", " "), evidence)


@pytest.mark.parametrize(
    ("when", "findings", "fires"),
    [
        ('{ code = "ACTIVE_CALL" }', [_f("ACTIVE_CALL")], True),
        ('{ code = "ACTIVE_CALL" }', [_f("NEW_DEVICE")], False),
        ('{ code = "ACTIVE_CALL", min_severity = "medium" }', [_f("ACTIVE_CALL", Severity.LOW)], False),
        ('{ code = "ACTIVE_CALL", min_severity = "medium" }', [_f("ACTIVE_CALL", Severity.MEDIUM)], True),
        ('{ category = "remote_control" }', [_f("SCREEN_SHARED")], True),
        ('{ category = "remote_control" }', [_f("ACTIVE_CALL")], False),
        ('{ code = "MALICIOUS_APP_*" }', [_f("MALICIOUS_APP_SPYWARE")], True),
        (
            '{ code = "MALICIOUS_APP_*", except_code = "MALICIOUS_APP_SPYWARE" }',
            [_f("MALICIOUS_APP_SPYWARE")],
            False,
        ),
        ('{ code = "SIDELOADED_RISKY_APP", min_count = 2 }', [_f("SIDELOADED_RISKY_APP")], False),
        ('{ code = "SIDELOADED_RISKY_APP", min_count = 2 }', [_f("SIDELOADED_RISKY_APP")] * 2, True),
        # Threshold boundaries: at_least and at_most are inclusive.
        (
            '{ code = "UNUSUAL_LOCATION", at_least = { distance_km = 500 } }',
            [_f("UNUSUAL_LOCATION", distance_km="499")],
            False,
        ),
        (
            '{ code = "UNUSUAL_LOCATION", at_least = { distance_km = 500 } }',
            [_f("UNUSUAL_LOCATION", distance_km="500")],
            True,
        ),
        (
            '{ code = "PHONE_NUMBER_CHANGED_RECENTLY", at_most = { days_ago = 7 } }',
            [_f("PHONE_NUMBER_CHANGED_RECENTLY", days_ago="7.0")],
            True,
        ),
        (
            '{ code = "PHONE_NUMBER_CHANGED_RECENTLY", at_most = { days_ago = 7 } }',
            [_f("PHONE_NUMBER_CHANGED_RECENTLY", days_ago="7.1")],
            False,
        ),
        # A finding without the measure never meets a threshold on it.
        ('{ code = "UNUSUAL_LOCATION", at_least = { distance_km = 1 } }', [_f("UNUSUAL_LOCATION")], False),
        ('{ all = [{ code = "ACTIVE_CALL" }, { code = "NEW_DEVICE" }] }', [_f("ACTIVE_CALL")], False),
        ('{ all = [{ code = "ACTIVE_CALL" }, { code = "NEW_DEVICE" }] }', [_f("ACTIVE_CALL"), _f("NEW_DEVICE")], True),
        ('{ any = [{ code = "ACTIVE_CALL" }, { code = "NEW_DEVICE" }] }', [_f("NEW_DEVICE")], True),
        ('{ all = [{ code = "ACTIVE_CALL" }, { not = { code = "NEW_DEVICE" } }] }', [_f("ACTIVE_CALL")], True),
        (
            '{ all = [{ code = "ACTIVE_CALL" }, { not = { code = "NEW_DEVICE" } }] }',
            [_f("ACTIVE_CALL"), _f("NEW_DEVICE")],
            False,
        ),
    ],
)
def test_conditions(when: str, findings: list[Finding], fires: bool) -> None:
    policy = read_policy(scenario(when), "1")
    assert (decide(findings, policy).scenario_id == "s") is fires


def test_shadow_scenarios_are_reported_but_never_decide() -> None:
    document = scenario('{ code = "NEW_DEVICE" }', scenario_id="live") + scenario(
        '{ code = "ACTIVE_CALL" }', action="freeze", extra='mode = "shadow"\n', scenario_id="trial"
    )
    policy = read_policy(document, "3")
    decision = decide([_f("ACTIVE_CALL")], policy)
    assert decision.action is Action.ALLOW
    assert [(s.scenario_id, s.action, s.mode) for s in decision.shadow] == [("trial", Action.FREEZE, Mode.SHADOW)]
    both = decide([_f("ACTIVE_CALL"), _f("NEW_DEVICE", Severity.LOW)], policy)
    assert (both.action, both.scenario_id) == (Action.STEP_UP, "live")
    assert [s.scenario_id for s in both.shadow] == ["trial"]
    assert [s.scenario_id for s in both.fired if s.deciding] == ["live"]


def test_ties_are_explained() -> None:
    document = (
        scenario('{ code = "ACTIVE_CALL" }', scenario_id="first")
        + scenario('{ code = "ACTIVE_CALL" }', scenario_id="second")
        + scenario('{ code = "ACTIVE_CALL" }', action="allow", scenario_id="note")
    )
    decision = decide([_f("ACTIVE_CALL")], read_policy(document, "1"))
    assert decision.scenario_id == "first"
    assert decision.explanation == (
        "STEP_UP by scenario first, the most severe action among 3 fired scenarios; "
        "first, second all ask for STEP_UP and first is listed first."
    )


def test_a_document_nested_too_deeply_is_a_problem_not_a_crash() -> None:
    with pytest.raises(PolicyError) as caught:
        read_policy("x = " + "[" * 100_000 + "]" * 100_000, "2")
    assert [problem.message for problem in caught.value.problems] == ["not readable TOML: nested too deeply"]
