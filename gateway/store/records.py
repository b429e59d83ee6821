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
