import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from gateway.generated.mtsg.v1 import blocklist_pb2 as _blocklist_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AddEntryRequest(_message.Message):
    __slots__ = ("request_id", "entry")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    entry: _blocklist_pb2.BlocklistEntry
    def __init__(self, request_id: _Optional[str] = ..., entry: _Optional[_Union[_blocklist_pb2.BlocklistEntry, _Mapping]] = ...) -> None: ...

class AddEntryResponse(_message.Message):
    __slots__ = ("entry",)
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    entry: _blocklist_pb2.BlocklistEntry
    def __init__(self, entry: _Optional[_Union[_blocklist_pb2.BlocklistEntry, _Mapping]] = ...) -> None: ...

class RevokeEntryRequest(_message.Message):
    __slots__ = ("request_id", "entry_id", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    entry_id: str
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., entry_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RevokeEntryResponse(_message.Message):
    __slots__ = ("entry",)
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    entry: _blocklist_pb2.BlocklistEntry
    def __init__(self, entry: _Optional[_Union[_blocklist_pb2.BlocklistEntry, _Mapping]] = ...) -> None: ...

class GetEntryRequest(_message.Message):
    __slots__ = ("entry_id",)
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    def __init__(self, entry_id: _Optional[str] = ...) -> None: ...

class GetEntryResponse(_message.Message):
    __slots__ = ("entry",)
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    entry: _blocklist_pb2.BlocklistEntry
    def __init__(self, entry: _Optional[_Union[_blocklist_pb2.BlocklistEntry, _Mapping]] = ...) -> None: ...

class ListEntriesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "category", "source", "key_type", "text", "include_revoked")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    KEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_REVOKED_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    category: _blocklist_pb2.ThreatCategory
    source: str
    key_type: _blocklist_pb2.BlocklistKeyType
    text: str
    include_revoked: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., category: _Optional[_Union[_blocklist_pb2.ThreatCategory, str]] = ..., source: _Optional[str] = ..., key_type: _Optional[_Union[_blocklist_pb2.BlocklistKeyType, str]] = ..., text: _Optional[str] = ..., include_revoked: _Optional[bool] = ...) -> None: ...

class ListEntriesResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[_blocklist_pb2.BlocklistEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[_blocklist_pb2.BlocklistEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ImportBundleRequest(_message.Message):
    __slots__ = ("request_id", "bundle")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    bundle: bytes
    def __init__(self, request_id: _Optional[str] = ..., bundle: _Optional[bytes] = ...) -> None: ...

class ImportBundleResponse(_message.Message):
    __slots__ = ("bundle_version", "added_count", "updated_count", "revoked_count")
    BUNDLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    ADDED_COUNT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_COUNT_FIELD_NUMBER: _ClassVar[int]
    bundle_version: int
    added_count: int
    updated_count: int
    revoked_count: int
    def __init__(self, bundle_version: _Optional[int] = ..., added_count: _Optional[int] = ..., updated_count: _Optional[int] = ..., revoked_count: _Optional[int] = ...) -> None: ...

class ExportBundleRequest(_message.Message):
    __slots__ = ("include_revoked",)
    INCLUDE_REVOKED_FIELD_NUMBER: _ClassVar[int]
    include_revoked: bool
    def __init__(self, include_revoked: _Optional[bool] = ...) -> None: ...

class ExportBundleResponse(_message.Message):
    __slots__ = ("bundle",)
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    bundle: bytes
    def __init__(self, bundle: _Optional[bytes] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CategoryCount(_message.Message):
    __slots__ = ("category", "count")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    category: _blocklist_pb2.ThreatCategory
    count: int
    def __init__(self, category: _Optional[_Union[_blocklist_pb2.ThreatCategory, str]] = ..., count: _Optional[int] = ...) -> None: ...

class SourceCount(_message.Message):
    __slots__ = ("source", "count")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    source: str
    count: int
    def __init__(self, source: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("version", "active_count", "by_category", "by_source", "last_import_at", "feeds", "by_key_type")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_COUNT_FIELD_NUMBER: _ClassVar[int]
    BY_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    BY_SOURCE_FIELD_NUMBER: _ClassVar[int]
    LAST_IMPORT_AT_FIELD_NUMBER: _ClassVar[int]
    FEEDS_FIELD_NUMBER: _ClassVar[int]
    BY_KEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    version: str
    active_count: int
    by_category: _containers.RepeatedCompositeFieldContainer[CategoryCount]
    by_source: _containers.RepeatedCompositeFieldContainer[SourceCount]
    last_import_at: _timestamp_pb2.Timestamp
    feeds: _containers.RepeatedCompositeFieldContainer[FeedState]
    by_key_type: _containers.RepeatedCompositeFieldContainer[KeyTypeCount]
    def __init__(self, version: _Optional[str] = ..., active_count: _Optional[int] = ..., by_category: _Optional[_Iterable[_Union[CategoryCount, _Mapping]]] = ..., by_source: _Optional[_Iterable[_Union[SourceCount, _Mapping]]] = ..., last_import_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., feeds: _Optional[_Iterable[_Union[FeedState, _Mapping]]] = ..., by_key_type: _Optional[_Iterable[_Union[KeyTypeCount, _Mapping]]] = ...) -> None: ...

class KeyTypeCount(_message.Message):
    __slots__ = ("key_type", "count")
    KEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    key_type: _blocklist_pb2.BlocklistKeyType
    count: int
    def __init__(self, key_type: _Optional[_Union[_blocklist_pb2.BlocklistKeyType, str]] = ..., count: _Optional[int] = ...) -> None: ...

class FeedState(_message.Message):
    __slots__ = ("url", "last_attempt_at", "last_success_at", "last_error", "bundle_version")
    URL_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SUCCESS_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    url: str
    last_attempt_at: _timestamp_pb2.Timestamp
    last_success_at: _timestamp_pb2.Timestamp
    last_error: str
    bundle_version: int
    def __init__(self, url: _Optional[str] = ..., last_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_success_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ..., bundle_version: _Optional[int] = ...) -> None: ...
