import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PhoneNumberChangeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PHONE_NUMBER_CHANGE_KIND_UNSPECIFIED: _ClassVar[PhoneNumberChangeKind]
    PHONE_NUMBER_CHANGE_KIND_NUMBER_CHANGED: _ClassVar[PhoneNumberChangeKind]
    PHONE_NUMBER_CHANGE_KIND_SIM_SWAP: _ClassVar[PhoneNumberChangeKind]
    PHONE_NUMBER_CHANGE_KIND_CARRIER_PORT: _ClassVar[PhoneNumberChangeKind]
PHONE_NUMBER_CHANGE_KIND_UNSPECIFIED: PhoneNumberChangeKind
PHONE_NUMBER_CHANGE_KIND_NUMBER_CHANGED: PhoneNumberChangeKind
PHONE_NUMBER_CHANGE_KIND_SIM_SWAP: PhoneNumberChangeKind
PHONE_NUMBER_CHANGE_KIND_CARRIER_PORT: PhoneNumberChangeKind

class PhoneNumberChange(_message.Message):
    __slots__ = ("event_id", "customer_id", "previous_phone_number", "new_phone_number", "changed_at", "kind", "source")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_PHONE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    NEW_PHONE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    customer_id: str
    previous_phone_number: str
    new_phone_number: str
    changed_at: _timestamp_pb2.Timestamp
    kind: PhoneNumberChangeKind
    source: str
    def __init__(self, event_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., previous_phone_number: _Optional[str] = ..., new_phone_number: _Optional[str] = ..., changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[_Union[PhoneNumberChangeKind, str]] = ..., source: _Optional[str] = ...) -> None: ...

class ReportPhoneNumberChangeRequest(_message.Message):
    __slots__ = ("request_id", "changes")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    changes: _containers.RepeatedCompositeFieldContainer[PhoneNumberChange]
    def __init__(self, request_id: _Optional[str] = ..., changes: _Optional[_Iterable[_Union[PhoneNumberChange, _Mapping]]] = ...) -> None: ...

class ReportPhoneNumberChangeResponse(_message.Message):
    __slots__ = ("accepted_count", "duplicate_count")
    ACCEPTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    accepted_count: int
    duplicate_count: int
    def __init__(self, accepted_count: _Optional[int] = ..., duplicate_count: _Optional[int] = ...) -> None: ...
