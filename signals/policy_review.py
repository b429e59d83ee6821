"""Warnings about a valid policy: what it lets through, and scores that contradict actions.

Validation (``signals.policy_document``) refuses what can never work.  A review
looks at a policy that works and says where its verdicts would surprise the
people who read them:

- a finding of HIGH or CRITICAL severity that no active scenario acts on by
  itself: a login carrying only that sign is allowed, which is what severity
  says it should not be (a detector's HIGH means "worth acting on alone");
- scores that do not rise with the action: a verdict's risk score is the score
  of the scenarios that chose its action, so a FREEZE scenario scoring below a
  STEP_UP one, or an ALLOW one scoring at or above an acting one, makes a
  stronger verdict read as the less risky one.

Warnings never stop a policy from being applied; the security team decides.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import product

from signals.catalog import FINDING_KINDS
from signals.findings import Finding, Severity
from signals.kinds import FindingKind
from signals.policy import Action, Mode, Policy, Scenario
from signals.policy_document import Problem

# Severities a detector uses for signs it means to be acted on alone.
ACT_ALONE_SEVERITIES = frozenset({Severity.HIGH, Severity.CRITICAL})


def _lone_findings(kind: FindingKind, severity: Severity) -> Iterator[list[tuple[Finding, str]]]:
    """One finding of ``kind`` at ``severity``, once with each extreme of every measure it carries.

    A threshold can only be met at one end of a measure's range, so trying both ends of each
    finds every scenario that the finding alone can make fire.
    """
    measures = list(kind.measures.values())
    for ends in product(*((measure.low, measure.high) for measure in measures)):
        evidence = {measure.name: f"{value:g}" for measure, value in zip(measures, ends, strict=True)}
        yield [(Finding(kind.code, severity, kind.description, evidence), kind.category)]


def acts_alone(scenario: Scenario, kind: FindingKind, severity: Severity) -> bool:
    """Whether ``scenario`` fires on a login whose only finding is one of ``kind`` at ``severity``."""
    return any(scenario.when.evaluate(findings) is not None for findings in _lone_findings(kind, severity))


def unacted_findings(policy: Policy) -> list[tuple[str, Severity]]:
    """(code, severity) of every HIGH or CRITICAL finding that no active acting scenario fires on alone."""
    acting = [s for s in policy.scenarios if s.mode is Mode.ACTIVE and s.action > Action.ALLOW]
    missed: list[tuple[str, Severity]] = []
    for code, kind in sorted(FINDING_KINDS.items()):
        for severity in sorted(kind.severities & ACT_ALONE_SEVERITIES):
            if not any(acts_alone(scenario, kind, severity) for scenario in acting):
                missed.append((code, severity))
    return missed


def _score_problems(policy: Policy) -> Iterator[Problem]:
    active = [(index, s) for index, s in enumerate(policy.scenarios) if s.mode is Mode.ACTIVE]
    for index, scenario in active:
        for _, stronger in active:
            if stronger.action > scenario.action and stronger.score <= scenario.score:
                yield Problem(
                    f"scenarios[{index}].score",
                    f"{scenario.id} ({scenario.action.name}) scores {scenario.score}, not below "
                    f"{stronger.id} ({stronger.action.name}, {stronger.score}): a {stronger.action.name} verdict "
                    f"would read as no riskier than a {scenario.action.name}",
                )
                break


def review_policy(policy: Policy) -> list[Problem]:
    """Every warning about ``policy``; empty for a policy whose verdicts say what they do."""
    warnings = [
        Problem(
            "scenarios",
            f"{code} ({severity.name}) makes no active scenario act by itself: a login with only this "
            f"finding is allowed",
        )
        for code, severity in unacted_findings(policy)
    ]
    warnings.extend(_score_problems(policy))
    return warnings
