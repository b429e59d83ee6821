import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from gateway.generated.mtsg.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BlocklistKeyType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BLOCKLIST_KEY_TYPE_UNSPECIFIED: _ClassVar[BlocklistKeyType]
    BLOCKLIST_KEY_TYPE_APK_SHA256: _ClassVar[BlocklistKeyType]
    BLOCKLIST_KEY_TYPE_CERT_SHA256: _ClassVar[BlocklistKeyType]
    BLOCKLIST_KEY_TYPE_CERT_SHA1: _ClassVar[BlocklistKeyType]
    BLOCKLIST_KEY_TYPE_PACKAGE_NAME: _ClassVar[BlocklistKeyType]
    BLOCKLIST_KEY_TYPE_PACKAGE_AND_CERT: _ClassVar[BlocklistKeyType]

class ThreatCategory(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    THREAT_CATEGORY_UNSPECIFIED: _ClassVar[ThreatCategory]
    THREAT_CATEGORY_VOICE_PHISHING: _ClassVar[ThreatCategory]
    THREAT_CATEGORY_REMOTE_CONTROL: _ClassVar[ThreatCategory]
    THREAT_CATEGORY_BANKER_TROJAN: _ClassVar[ThreatCategory]
    THREAT_CATEGORY_FAKE_BANK_APP: _ClassVar[ThreatCategory]
    THREAT_CATEGORY_STALKERWARE: _ClassVar[ThreatCategory]
    THREAT_CATEGORY_SPYWARE: _ClassVar[ThreatCategory]
    THREAT_CATEGORY_DROPPER: _ClassVar[ThreatCategory]
    THREAT_CATEGORY_ROOT_TOOL: _ClassVar[ThreatCategory]
BLOCKLIST_KEY_TYPE_UNSPECIFIED: BlocklistKeyType
BLOCKLIST_KEY_TYPE_APK_SHA256: BlocklistKeyType
BLOCKLIST_KEY_TYPE_CERT_SHA256: BlocklistKeyType
BLOCKLIST_KEY_TYPE_CERT_SHA1: BlocklistKeyType
BLOCKLIST_KEY_TYPE_PACKAGE_NAME: BlocklistKeyType
BLOCKLIST_KEY_TYPE_PACKAGE_AND_CERT: BlocklistKeyType
THREAT_CATEGORY_UNSPECIFIED: ThreatCategory
THREAT_CATEGORY_VOICE_PHISHING: ThreatCategory
THREAT_CATEGORY_REMOTE_CONTROL: ThreatCategory
THREAT_CATEGORY_BANKER_TROJAN: ThreatCategory
THREAT_CATEGORY_FAKE_BANK_APP: ThreatCategory
THREAT_CATEGORY_STALKERWARE: ThreatCategory
THREAT_CATEGORY_SPYWARE: ThreatCategory
THREAT_CATEGORY_DROPPER: ThreatCategory
THREAT_CATEGORY_ROOT_TOOL: ThreatCategory

class BlocklistEntry(_message.Message):
    __slots__ = ("entry_id", "key_type", "value", "package_name", "category", "severity", "family", "source", "source_reference", "confidence", "valid_from", "valid_until", "revoked", "revoke_reason", "created_at", "created_by", "modified_at", "modified_by")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_NAME_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    REVOKE_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_BY_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    key_type: BlocklistKeyType
    value: str
    package_name: str
    category: ThreatCategory
    severity: _common_pb2.Severity
    family: str
    source: str
    source_reference: str
    confidence: int
    valid_from: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    revoked: bool
    revoke_reason: str
    created_at: _timestamp_pb2.Timestamp
    created_by: str
    modified_at: _timestamp_pb2.Timestamp
    modified_by: str
    def __init__(self, entry_id: _Optional[str] = ..., key_type: _Optional[_Union[BlocklistKeyType, str]] = ..., value: _Optional[str] = ..., package_name: _Optional[str] = ..., category: _Optional[_Union[ThreatCategory, str]] = ..., severity: _Optional[_Union[_common_pb2.Severity, str]] = ..., family: _Optional[str] = ..., source: _Optional[str] = ..., source_reference: _Optional[str] = ..., confidence: _Optional[int] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked: _Optional[bool] = ..., revoke_reason: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ..., modified_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., modified_by: _Optional[str] = ...) -> None: ...
