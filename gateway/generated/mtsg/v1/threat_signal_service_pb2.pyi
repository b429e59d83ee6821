import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from gateway.generated.mtsg.v1 import common_pb2 as _common_pb2
from gateway.generated.mtsg.v1 import telemetry_pb2 as _telemetry_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CheckLoginRequest(_message.Message):
    __slots__ = ("request_id", "telemetry")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    telemetry: _telemetry_pb2.LoginTelemetry
    def __init__(self, request_id: _Optional[str] = ..., telemetry: _Optional[_Union[_telemetry_pb2.LoginTelemetry, _Mapping]] = ...) -> None: ...

class CheckLoginResponse(_message.Message):
    __slots__ = ("verdict_id", "action", "step_up_method", "freeze_scopes", "risk_score", "reasons", "summary", "scenario_id", "policy_version", "blocklist_version", "decided_at", "fired_scenarios", "explanation", "inventory_digest")
    VERDICT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    STEP_UP_METHOD_FIELD_NUMBER: _ClassVar[int]
    FREEZE_SCOPES_FIELD_NUMBER: _ClassVar[int]
    RISK_SCORE_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    SCENARIO_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    BLOCKLIST_VERSION_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    FIRED_SCENARIOS_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    INVENTORY_DIGEST_FIELD_NUMBER: _ClassVar[int]
    verdict_id: str
    action: _common_pb2.Action
    step_up_method: _common_pb2.StepUpMethod
    freeze_scopes: _containers.RepeatedScalarFieldContainer[_common_pb2.FreezeScope]
    risk_score: int
    reasons: _containers.RepeatedCompositeFieldContainer[_common_pb2.Reason]
    summary: str
    scenario_id: str
    policy_version: str
    blocklist_version: str
    decided_at: _timestamp_pb2.Timestamp
    fired_scenarios: _containers.RepeatedCompositeFieldContainer[FiredScenario]
    explanation: str
    inventory_digest: str
    def __init__(self, verdict_id: _Optional[str] = ..., action: _Optional[_Union[_common_pb2.Action, str]] = ..., step_up_method: _Optional[_Union[_common_pb2.StepUpMethod, str]] = ..., freeze_scopes: _Optional[_Iterable[_Union[_common_pb2.FreezeScope, str]]] = ..., risk_score: _Optional[int] = ..., reasons: _Optional[_Iterable[_Union[_common_pb2.Reason, _Mapping]]] = ..., summary: _Optional[str] = ..., scenario_id: _Optional[str] = ..., policy_version: _Optional[str] = ..., blocklist_version: _Optional[str] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fired_scenarios: _Optional[_Iterable[_Union[FiredScenario, _Mapping]]] = ..., explanation: _Optional[str] = ..., inventory_digest: _Optional[str] = ...) -> None: ...

class FiredScenario(_message.Message):
    __slots__ = ("scenario_id", "action", "score", "deciding")
    SCENARIO_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    DECIDING_FIELD_NUMBER: _ClassVar[int]
    scenario_id: str
    action: _common_pb2.Action
    score: int
    deciding: bool
    def __init__(self, scenario_id: _Optional[str] = ..., action: _Optional[_Union[_common_pb2.Action, str]] = ..., score: _Optional[int] = ..., deciding: _Optional[bool] = ...) -> None: ...
