"""Policy: scenarios (data) that turn findings into an action.

A scenario fires when its condition holds over the login's findings.  Among the
fired active scenarios the most severe action wins; among equals, the scenario
listed first wins, so a policy author controls ties by order, and the verdict
says so in its explanation.  Shadow scenarios are evaluated the same way and
reported beside the decision, but never change it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum, IntEnum

from signals.catalog import FINDING_KINDS
from signals.conditions import Condition
from signals.detector_settings import DetectorSettings
from signals.findings import SEVERITY_SCORE, Finding
from signals.wording import listing

# Findings named in the summary of a verdict no scenario decided; the reasons list them all.
_UNACTED_SHOWN = 3


class Action(IntEnum):
    """Ordered by severity so ``max()`` picks the one to act on."""

    ALLOW = 1
    STEP_UP = 2
    FREEZE = 3


class StepUpMethod(Enum):
    NONE = "none"
    CALLBACK_PREVIOUS_NUMBER = "callback_previous_number"
    OTP = "otp"
    FACE = "face"
    VIDEO_CALL = "video_call"
    BRANCH_VISIT = "branch_visit"


class FreezeScope(Enum):
    TRANSFERS = "transfers"
    CASH_WITHDRAWAL = "cash_withdrawal"
    CARD_LOANS = "card_loans"


class Mode(Enum):
    ACTIVE = "active"
    # Evaluated and recorded with what it would have done; never changes a verdict.
    SHADOW = "shadow"


@dataclass(frozen=True, slots=True)
class Scenario:
    id: str
    description: str
    when: Condition
    action: Action
    step_up_method: StepUpMethod = StepUpMethod.NONE
    freeze_scopes: tuple[FreezeScope, ...] = ()
    score: int = 0
    mode: Mode = Mode.ACTIVE
    # How the findings the scenario rests on are joined into the summary sentence.
    joiner: str = " while "


@dataclass(frozen=True, slots=True)
class Policy:
    version: str
    scenarios: tuple[Scenario, ...]
    detectors: DetectorSettings = field(default_factory=DetectorSettings)
    name: str = ""


@dataclass(frozen=True, slots=True)
class Reason:
    finding: Finding
    scenario_id: str


@dataclass(frozen=True, slots=True)
class FiredScenario:
    scenario_id: str
    action: Action
    score: int
    mode: Mode
    deciding: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    step_up_method: StepUpMethod
    freeze_scopes: tuple[FreezeScope, ...]
    risk_score: int
    reasons: tuple[Reason, ...]
    summary: str
    scenario_id: str
    policy_version: str
    # Every scenario that fired, active ones in policy order, then shadow ones.
    fired: tuple[FiredScenario, ...] = ()
    # Why this scenario decided, for analysts: the rule and, when it came to that, the tie.
    explanation: str = ""

    @property
    def shadow(self) -> tuple[FiredScenario, ...]:
        return tuple(fired for fired in self.fired if fired.mode is Mode.SHADOW)


def _sentence(fragments: Sequence[Finding], joiner: str) -> str:
    text = joiner.join(finding.summary for finding in fragments)
    return text[:1].upper() + text[1:] + "."


def _explanation(deciding: Scenario, active: Sequence[Scenario]) -> str:
    peers = [scenario.id for scenario in active if scenario.action == deciding.action]
    text = f"{deciding.action.name} by scenario {deciding.id}"
    if len(active) > 1:
        text += f", the most severe action among {len(active)} fired scenarios"
    if len(peers) > 1:
        text += f"; {', '.join(peers)} all ask for {deciding.action.name} and {deciding.id} is listed first"
    return text + "."


def _unacted_score(findings: Sequence[Finding], policy: Policy) -> int:
    """The weight of findings no scenario acted on, held below every score at which the policy acts.

    The score is the policy's own measure of risk: a verdict's score is the score of the scenarios that
    chose its action, so an ALLOW must never read as riskier than a STEP_UP or FREEZE of the same policy.
    """
    weight = min(100, sum(SEVERITY_SCORE[finding.severity] for finding in findings))
    acting = [s.score for s in policy.scenarios if s.mode is Mode.ACTIVE and s.action > Action.ALLOW]
    return min(weight, max(0, min(acting) - 1)) if acting else weight


def _unacted_summary(strongest_first: Sequence[Finding]) -> str:
    if not strongest_first:
        return "Nothing suspicious was found."
    shown = [finding.summary for finding in strongest_first[:_UNACTED_SHOWN]]
    if len(strongest_first) > _UNACTED_SHOWN:
        shown.append(f"{len(strongest_first) - _UNACTED_SHOWN:,} more")
    return f"No scenario acts on what was found: {listing(shown)}."


def decide(findings: Sequence[Finding], policy: Policy) -> Decision:
    """Apply ``policy`` to ``findings``; deterministic for the same inputs."""
    strongest_first = sorted(findings, key=lambda finding: finding.severity, reverse=True)
    categorised = [
        (finding, kind.category if (kind := FINDING_KINDS.get(finding.code)) else "") for finding in strongest_first
    ]
    active: list[tuple[Scenario, list[list[Finding]]]] = []
    shadow: list[Scenario] = []
    for scenario in policy.scenarios:
        groups = scenario.when.evaluate(categorised)
        if groups is None:
            continue
        if scenario.mode is Mode.SHADOW:
            shadow.append(scenario)
        else:
            active.append((scenario, groups))
    shadow_fired = tuple(FiredScenario(s.id, s.action, s.score, Mode.SHADOW) for s in shadow)

    if not active:
        return Decision(
            action=Action.ALLOW,
            step_up_method=StepUpMethod.NONE,
            freeze_scopes=(),
            risk_score=_unacted_score(findings, policy),
            reasons=tuple(Reason(finding, "") for finding in strongest_first),
            summary=_unacted_summary(strongest_first),
            scenario_id="",
            policy_version=policy.version,
            fired=shadow_fired,
            explanation="ALLOW: no active scenario fired.",
        )

    # max() keeps the first of equals, and `active` is in policy order.
    deciding, deciding_groups = max(active, key=lambda pair: pair[0].action)
    used_by: dict[int, str] = {}
    for scenario, groups in active:
        for group in groups:
            for finding in group:
                used_by.setdefault(id(finding), scenario.id)
    speakers: list[Finding] = []
    for group in deciding_groups:  # the deciding scenario claims its own findings
        for finding in group:
            used_by[id(finding)] = deciding.id
        if all(group[0] is not spoken for spoken in speakers):
            speakers.append(group[0])
    fired_scenarios = [scenario for scenario, _ in active]
    return Decision(
        action=deciding.action,
        step_up_method=deciding.step_up_method,
        freeze_scopes=deciding.freeze_scopes,
        risk_score=max(scenario.score for scenario in fired_scenarios if scenario.action == deciding.action),
        reasons=tuple(Reason(finding, used_by.get(id(finding), "")) for finding in strongest_first),
        summary=_sentence(speakers, deciding.joiner) if speakers else deciding.description,
        scenario_id=deciding.id,
        policy_version=policy.version,
        fired=(
            *(FiredScenario(s.id, s.action, s.score, Mode.ACTIVE, s is deciding) for s in fired_scenarios),
            *shadow_fired,
        ),
        explanation=_explanation(deciding, fired_scenarios),
    )
