import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from gateway.generated.mtsg.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CommandType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMMAND_TYPE_UNSPECIFIED: _ClassVar[CommandType]
    COMMAND_TYPE_FREEZE_ACCOUNT: _ClassVar[CommandType]
    COMMAND_TYPE_REQUIRE_STEP_UP: _ClassVar[CommandType]
    COMMAND_TYPE_UNFREEZE_ACCOUNT: _ClassVar[CommandType]
COMMAND_TYPE_UNSPECIFIED: CommandType
COMMAND_TYPE_FREEZE_ACCOUNT: CommandType
COMMAND_TYPE_REQUIRE_STEP_UP: CommandType
COMMAND_TYPE_UNFREEZE_ACCOUNT: CommandType

class Command(_message.Message):
    __slots__ = ("command_id", "type", "customer_id", "sequence", "verdict_id", "freeze_scopes", "step_up_method", "reasons", "scenario_id", "created_at", "cursor")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_ID_FIELD_NUMBER: _ClassVar[int]
    FREEZE_SCOPES_FIELD_NUMBER: _ClassVar[int]
    STEP_UP_METHOD_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    SCENARIO_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    type: CommandType
    customer_id: str
    sequence: int
    verdict_id: str
    freeze_scopes: _containers.RepeatedScalarFieldContainer[_common_pb2.FreezeScope]
    step_up_method: _common_pb2.StepUpMethod
    reasons: _containers.RepeatedCompositeFieldContainer[_common_pb2.Reason]
    scenario_id: str
    created_at: _timestamp_pb2.Timestamp
    cursor: int
    def __init__(self, command_id: _Optional[str] = ..., type: _Optional[_Union[CommandType, str]] = ..., customer_id: _Optional[str] = ..., sequence: _Optional[int] = ..., verdict_id: _Optional[str] = ..., freeze_scopes: _Optional[_Iterable[_Union[_common_pb2.FreezeScope, str]]] = ..., step_up_method: _Optional[_Union[_common_pb2.StepUpMethod, str]] = ..., reasons: _Optional[_Iterable[_Union[_common_pb2.Reason, _Mapping]]] = ..., scenario_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cursor: _Optional[int] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("consumer_id", "after_cursor")
    CONSUMER_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_CURSOR_FIELD_NUMBER: _ClassVar[int]
    consumer_id: str
    after_cursor: int
    def __init__(self, consumer_id: _Optional[str] = ..., after_cursor: _Optional[int] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("command",)
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    command: Command
    def __init__(self, command: _Optional[_Union[Command, _Mapping]] = ...) -> None: ...

class AckRequest(_message.Message):
    __slots__ = ("consumer_id", "cursor")
    CONSUMER_ID_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    consumer_id: str
    cursor: int
    def __init__(self, consumer_id: _Optional[str] = ..., cursor: _Optional[int] = ...) -> None: ...

class AckResponse(_message.Message):
    __slots__ = ("acknowledged_cursor",)
    ACKNOWLEDGED_CURSOR_FIELD_NUMBER: _ClassVar[int]
    acknowledged_cursor: int
    def __init__(self, acknowledged_cursor: _Optional[int] = ...) -> None: ...
