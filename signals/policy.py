"""Policy: scenarios (data) that turn findings into an action.

A scenario fires when, for each of its ``require`` groups, at least one finding
with a code in that group is present (an AND of ORs).  The most severe action
among fired scenarios wins; among equals, the scenario listed first wins, so a
policy author controls ties by order.  This is the first, built-in policy; the
scenario language grows with the policy issue, the decision rule stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum

from blocklists.entry import Category
from signals.detectors.active_call import ACTIVE_CALL
from signals.detectors.device_integrity import BANK_APP_TAMPERED, COMPROMISED_DEVICE_CODES
from signals.detectors.malicious_app import MALICIOUS_APP_CODES
from signals.detectors.new_device import NEW_DEVICE
from signals.detectors.phone_change import PHONE_NUMBER_CHANGED_RECENTLY
from signals.findings import SEVERITY_SCORE, Finding
from signals.remote_control import (
    REMOTE_CONTROL_APP_ACTIVE,
    REMOTE_CONTROL_APP_INSTALLED,
    REMOTE_INPUT_ACTIVE,
    SCREEN_SHARED,
)


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


ALL_FREEZE_SCOPES = (FreezeScope.TRANSFERS, FreezeScope.CASH_WITHDRAWAL, FreezeScope.CARD_LOANS)


@dataclass(frozen=True, slots=True)
class Scenario:
    id: str
    description: str
    require: tuple[frozenset[str], ...]
    action: Action
    step_up_method: StepUpMethod = StepUpMethod.NONE
    freeze_scopes: tuple[FreezeScope, ...] = ()
    score: int = 0
    # How the strongest finding of each group is joined into the summary sentence.
    joiner: str = " while "

    def matched(self, findings: Sequence[Finding]) -> list[Finding] | None:
        """The strongest finding for each group, or None when a group has none."""
        chosen: list[Finding] = []
        for group in self.require:
            candidates = [finding for finding in findings if finding.code in group]
            if not candidates:
                return None
            chosen.append(max(candidates, key=lambda finding: finding.severity))
        return chosen


@dataclass(frozen=True, slots=True)
class Policy:
    version: str
    scenarios: tuple[Scenario, ...]


@dataclass(frozen=True, slots=True)
class Reason:
    finding: Finding
    scenario_id: str


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


_REMOTE_CONTROL_ACTIVE = frozenset({REMOTE_CONTROL_APP_ACTIVE, SCREEN_SHARED, REMOTE_INPUT_ACTIVE})
# The playbook freezes on apps built to steal money or drive the phone; other listed
# malware (stalkerware, spyware, droppers, root tools) asks the customer to prove who they are.
_FREEZING_CATEGORIES = (Category.VOICE_PHISHING, Category.REMOTE_CONTROL, Category.BANKER_TROJAN)
_MONEY_STEALING_APP = frozenset(MALICIOUS_APP_CODES[category] for category in _FREEZING_CATEGORIES)
_OTHER_MALICIOUS_APP = frozenset(MALICIOUS_APP_CODES.values()) - _MONEY_STEALING_APP

DEFAULT_POLICY = Policy(
    version="builtin-2",
    scenarios=(
        Scenario(
            id="malicious-app",
            description="A voice-phishing, remote-control or banking-trojan app from the registry is installed.",
            require=(_MONEY_STEALING_APP,),
            action=Action.FREEZE,
            freeze_scopes=ALL_FREEZE_SCOPES,
            score=100,
        ),
        Scenario(
            id="remote-control-during-call",
            description="A remote-control app is active or the screen is shared while a call is active.",
            require=(_REMOTE_CONTROL_ACTIVE, frozenset({ACTIVE_CALL})),
            action=Action.FREEZE,
            freeze_scopes=ALL_FREEZE_SCOPES,
            score=95,
        ),
        Scenario(
            id="phone-changed-new-device",
            description="The phone number changed recently and the login comes from a new device.",
            require=(frozenset({PHONE_NUMBER_CHANGED_RECENTLY}), frozenset({NEW_DEVICE})),
            action=Action.STEP_UP,
            step_up_method=StepUpMethod.CALLBACK_PREVIOUS_NUMBER,
            score=70,
            joiner=", and ",
        ),
        Scenario(
            id="other-malicious-app",
            description="Other malware from the registry (stalkerware, spyware, dropper, fake bank app, root tool).",
            require=(_OTHER_MALICIOUS_APP,),
            action=Action.STEP_UP,
            step_up_method=StepUpMethod.FACE,
            score=70,
        ),
        Scenario(
            id="bank-app-tampered",
            description="The banking app itself has been modified.",
            require=(frozenset({BANK_APP_TAMPERED}),),
            action=Action.STEP_UP,
            step_up_method=StepUpMethod.FACE,
            score=90,
        ),
        Scenario(
            id="remote-control-active",
            description="A remote-control app is active or the screen is shared or driven remotely.",
            require=(_REMOTE_CONTROL_ACTIVE,),
            action=Action.STEP_UP,
            step_up_method=StepUpMethod.FACE,
            score=60,
        ),
        Scenario(
            id="remote-control-installed-during-call",
            description="A remote-control app is installed and a call is active.",
            require=(frozenset({REMOTE_CONTROL_APP_INSTALLED}), frozenset({ACTIVE_CALL})),
            action=Action.STEP_UP,
            step_up_method=StepUpMethod.FACE,
            score=60,
        ),
        Scenario(
            id="compromised-device-new-device",
            description="A rooted, hooked, debugged or emulated device that is new for this customer.",
            require=(COMPROMISED_DEVICE_CODES, frozenset({NEW_DEVICE})),
            action=Action.STEP_UP,
            step_up_method=StepUpMethod.OTP,
            score=60,
            joiner=", and ",
        ),
    ),
)


def _sentence(fragments: Sequence[Finding], joiner: str) -> str:
    text = joiner.join(finding.summary for finding in fragments)
    return text[:1].upper() + text[1:] + "."


def decide(findings: Sequence[Finding], policy: Policy) -> Decision:
    """Apply ``policy`` to ``findings``; deterministic for the same inputs."""
    strongest_first = sorted(findings, key=lambda finding: finding.severity, reverse=True)
    fired: list[tuple[Scenario, list[Finding]]] = []
    for scenario in policy.scenarios:
        matched = scenario.matched(strongest_first)
        if matched is not None:
            fired.append((scenario, matched))

    finding_score = min(100, sum(SEVERITY_SCORE[finding.severity] for finding in findings))
    if not fired:
        summary = (
            "Nothing suspicious was found."
            if not findings
            else f"No scenario fired; {len(findings)} finding(s) recorded."
        )
        return Decision(
            action=Action.ALLOW,
            step_up_method=StepUpMethod.NONE,
            freeze_scopes=(),
            risk_score=finding_score,
            reasons=tuple(Reason(finding, "") for finding in strongest_first),
            summary=summary,
            scenario_id="",
            policy_version=policy.version,
        )

    # max() keeps the first of equals, and `fired` is in policy order.
    deciding, deciding_findings = max(fired, key=lambda pair: pair[0].action)
    used_by: dict[int, str] = {}
    for scenario, matched in fired:
        for finding in matched:
            used_by.setdefault(id(finding), scenario.id)
    for finding in deciding_findings:  # the deciding scenario claims its own findings
        used_by[id(finding)] = deciding.id
    return Decision(
        action=deciding.action,
        step_up_method=deciding.step_up_method,
        freeze_scopes=deciding.freeze_scopes,
        risk_score=max(finding_score, min(100, max(scenario.score for scenario, _ in fired))),
        reasons=tuple(Reason(finding, used_by.get(id(finding), "")) for finding in strongest_first),
        summary=_sentence(deciding_findings, deciding.joiner),
        scenario_id=deciding.id,
        policy_version=policy.version,
    )
