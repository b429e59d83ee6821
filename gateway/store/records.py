"""Plain records that cross the store interface, the same for every backend."""

from __future__ import annotations

from dataclasses import dataclass

from signals.context import PhoneNumberChangeSummary


@dataclass(frozen=True, slots=True)
class StoredVerdict:
    verdict_id: str
    request_fingerprint: bytes
    response: bytes


@dataclass(frozen=True, slots=True)
class LoginLocation:
    latitude: float | None
    longitude: float | None
    accuracy_meters: float | None
    source: str
    client_ip: str


@dataclass(frozen=True, slots=True)
class LoginRecord:
    """Everything one CheckLogin writes, committed in one transaction."""

    verdict_id: str
    request_id: str | None
    request_fingerprint: bytes
    customer_id: str
    device_id: str
    action: str
    decided_at: float
    response: bytes
    location: LoginLocation | None


@dataclass(frozen=True, slots=True)
class PhoneChangeRecord:
    event_id: str
    customer_id: str
    previous_number_hash: str
    new_number_hash: str
    hash_key_id: str
    changed_at: float
    kind: str
    source: str
    received_at: float


@dataclass(frozen=True, slots=True)
class LoginHistory:
    known_device_ids: frozenset[str]
    latest_phone_change: PhoneNumberChangeSummary | None


@dataclass(frozen=True, slots=True)
class EntryQuery:
    """A page of the registry: filters combine with AND; ``after`` is the last entry_id of the previous page."""

    page_size: int = 100
    after: str = ""
    category: str = ""
    source: str = ""
    key_type: str = ""
    text: str = ""
    include_revoked: bool = False


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What one import changed; ``version`` is the registry version it produced (unchanged when nothing changed)."""

    version: int
    received: int
    added: int
    updated: int
    revoked: int
    unchanged: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class BundleRecord:
    """The signed bundle an import comes from, remembered to refuse rollbacks."""

    publisher: str
    bundle_version: int
    entries_sha256: str
    key_id: str


@dataclass(frozen=True, slots=True)
class BlocklistStatus:
    version: int
    active_count: int
    by_category: tuple[tuple[str, int], ...]
    by_source: tuple[tuple[str, int], ...]
    last_import_at: float | None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    audit_id: int
    at: float
    actor: str
    action: str
    target: str
    before_json: str | None
    after_json: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class FeedStatus:
    url: str
    last_attempt_at: float
    last_success_at: float | None
    last_error: str
    etag: str
    bundle_version: int | None
