from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTION_UNSPECIFIED: _ClassVar[Action]
    ACTION_ALLOW: _ClassVar[Action]
    ACTION_STEP_UP: _ClassVar[Action]
    ACTION_FREEZE: _ClassVar[Action]

class StepUpMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_UP_METHOD_UNSPECIFIED: _ClassVar[StepUpMethod]
    STEP_UP_METHOD_CALLBACK_PREVIOUS_NUMBER: _ClassVar[StepUpMethod]
    STEP_UP_METHOD_OTP: _ClassVar[StepUpMethod]
    STEP_UP_METHOD_FACE: _ClassVar[StepUpMethod]
    STEP_UP_METHOD_VIDEO_CALL: _ClassVar[StepUpMethod]
    STEP_UP_METHOD_BRANCH_VISIT: _ClassVar[StepUpMethod]

class FreezeScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FREEZE_SCOPE_UNSPECIFIED: _ClassVar[FreezeScope]
    FREEZE_SCOPE_TRANSFERS: _ClassVar[FreezeScope]
    FREEZE_SCOPE_CASH_WITHDRAWAL: _ClassVar[FreezeScope]
    FREEZE_SCOPE_CARD_LOANS: _ClassVar[FreezeScope]

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    SEVERITY_INFO: _ClassVar[Severity]
    SEVERITY_LOW: _ClassVar[Severity]
    SEVERITY_MEDIUM: _ClassVar[Severity]
    SEVERITY_HIGH: _ClassVar[Severity]
    SEVERITY_CRITICAL: _ClassVar[Severity]
ACTION_UNSPECIFIED: Action
ACTION_ALLOW: Action
ACTION_STEP_UP: Action
ACTION_FREEZE: Action
STEP_UP_METHOD_UNSPECIFIED: StepUpMethod
STEP_UP_METHOD_CALLBACK_PREVIOUS_NUMBER: StepUpMethod
STEP_UP_METHOD_OTP: StepUpMethod
STEP_UP_METHOD_FACE: StepUpMethod
STEP_UP_METHOD_VIDEO_CALL: StepUpMethod
STEP_UP_METHOD_BRANCH_VISIT: StepUpMethod
FREEZE_SCOPE_UNSPECIFIED: FreezeScope
FREEZE_SCOPE_TRANSFERS: FreezeScope
FREEZE_SCOPE_CASH_WITHDRAWAL: FreezeScope
FREEZE_SCOPE_CARD_LOANS: FreezeScope
SEVERITY_UNSPECIFIED: Severity
SEVERITY_INFO: Severity
SEVERITY_LOW: Severity
SEVERITY_MEDIUM: Severity
SEVERITY_HIGH: Severity
SEVERITY_CRITICAL: Severity

class Reason(_message.Message):
    __slots__ = ("code", "message", "evidence", "scenario_id", "severity")
    class EvidenceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    SCENARIO_ID_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    evidence: _containers.ScalarMap[str, str]
    scenario_id: str
    severity: Severity
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., evidence: _Optional[_Mapping[str, str]] = ..., scenario_id: _Optional[str] = ..., severity: _Optional[_Union[Severity, str]] = ...) -> None: ...
