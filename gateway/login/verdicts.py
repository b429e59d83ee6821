"""Mapping the brain's Decision onto the CheckLoginResponse of the contract."""

from __future__ import annotations

import os

from google.protobuf.timestamp_pb2 import Timestamp

from gateway.generated.mtsg.v1 import common_pb2, threat_signal_service_pb2
from signals.findings import Severity
from signals.policy import Action, Decision, FreezeScope, Mode, StepUpMethod

_ACTIONS = {action: common_pb2.Action.Value(f"ACTION_{action.name}") for action in Action}
_METHODS = {
    method: common_pb2.StepUpMethod.Value(
        "STEP_UP_METHOD_UNSPECIFIED" if method is StepUpMethod.NONE else f"STEP_UP_METHOD_{method.name}"
    )
    for method in StepUpMethod
}
_SCOPES = {scope: common_pb2.FreezeScope.Value(f"FREEZE_SCOPE_{scope.name}") for scope in FreezeScope}
_SEVERITIES = {severity: common_pb2.Severity.Value(f"SEVERITY_{severity.name}") for severity in Severity}


def new_verdict_id(now: float) -> str:
    """Time-ordered id ("v_" + 48-bit milliseconds + 80 random bits) so verdict rows cluster by time."""
    return f"v_{int(now * 1000):012x}{os.urandom(10).hex()}"


def to_response(
    decision: Decision, verdict_id: str, decided_at: float, blocklist_version: str
) -> threat_signal_service_pb2.CheckLoginResponse:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(decided_at * 1e9))
    return threat_signal_service_pb2.CheckLoginResponse(
        verdict_id=verdict_id,
        action=_ACTIONS[decision.action],
        step_up_method=_METHODS[decision.step_up_method],
        freeze_scopes=[_SCOPES[scope] for scope in decision.freeze_scopes],
        risk_score=decision.risk_score,
        reasons=[
            common_pb2.Reason(
                code=reason.finding.code,
                message=reason.finding.message,
                evidence=dict(reason.finding.evidence),
                scenario_id=reason.scenario_id,
                severity=_SEVERITIES[reason.finding.severity],
            )
            for reason in decision.reasons
        ],
        summary=decision.summary,
        scenario_id=decision.scenario_id,
        policy_version=decision.policy_version,
        blocklist_version=blocklist_version,
        decided_at=stamp,
        fired_scenarios=[
            threat_signal_service_pb2.FiredScenario(
                scenario_id=fired.scenario_id, action=_ACTIONS[fired.action], score=fired.score, deciding=fired.deciding
            )
            for fired in decision.fired
            if fired.mode is Mode.ACTIVE  # shadow scenarios are recorded, never shown to the device
        ],
        explanation=decision.explanation,
    )


def degraded_freeze(
    response: threat_signal_service_pb2.CheckLoginResponse, cap: int
) -> threat_signal_service_pb2.CheckLoginResponse:
    """The FREEZE the safety valve held back, as a STEP_UP by video call that keeps every reason of the FREEZE.

    A person verifies the customer instead of the account being frozen outright; the
    reasons stay so the security team sees what the rule (or the poisoned feed) claimed.
    """
    degraded = threat_signal_service_pb2.CheckLoginResponse()
    degraded.CopyFrom(response)
    degraded.action = common_pb2.ACTION_STEP_UP
    degraded.step_up_method = common_pb2.STEP_UP_METHOD_VIDEO_CALL
    del degraded.freeze_scopes[:]
    degraded.reasons.append(
        common_pb2.Reason(
            code="SAFETY_VALVE",
            message=(
                f"More than {cap} accounts were to be frozen within a minute, so this FREEZE was turned into"
                " verification by video call until the security team has checked the rules and feeds."
            ),
            evidence={"freeze_cap_per_minute": str(cap), "scenario_held_back": response.scenario_id},
            severity=common_pb2.SEVERITY_HIGH,
        )
    )
    degraded.summary = f"STEP_UP instead of FREEZE: the safety valve is open. {response.summary}".strip()
    return degraded


def fail_safe_response(
    verdict_id: str, decided_at: float, policy_version: str, blocklist_version: str
) -> threat_signal_service_pb2.CheckLoginResponse:
    """STEP_UP by face check when the gateway cannot consult its records: nothing is allowed unchecked.

    Face check rather than a call: during an outage every login lands here, and a
    self-service check scales where a video call with staff would not.  Not stored, no command.
    """
    stamp = Timestamp()
    stamp.FromNanoseconds(int(decided_at * 1e9))
    return threat_signal_service_pb2.CheckLoginResponse(
        verdict_id=verdict_id,
        action=common_pb2.ACTION_STEP_UP,
        step_up_method=common_pb2.STEP_UP_METHOD_FACE,
        reasons=[
            common_pb2.Reason(
                code="STORE_UNAVAILABLE",
                message="The gateway could not consult the customer's history in time, so extra verification is"
                " required as a precaution.",
                severity=common_pb2.SEVERITY_MEDIUM,
            )
        ],
        summary="STEP_UP as a precaution: the gateway's store did not answer in time.",
        policy_version=policy_version,
        blocklist_version=blocklist_version,
        decided_at=stamp,
    )
