"""Plain records that cross the store interface, the same for every backend."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from signals.context import DeviceInventory, PastLocation, PhoneNumberChangeSummary


@dataclass(frozen=True, slots=True)
class StoredVerdict:
    verdict_id: str
    request_fingerprint: bytes
    response: bytes


@dataclass(frozen=True, slots=True)
class RecordedFreeze:
    """What ``record_freeze`` stored: the FREEZE, or the STEP_UP the safety valve put in its place."""

    stored: StoredVerdict
    # The valve held the FREEZE back: the STEP_UP record was written instead.
    held_back: bool
    # This login tripped the valve: the one to raise the alarm.
    tripped_valve: bool


@dataclass(frozen=True, slots=True)
class LoginLocation:
    latitude: float | None
    longitude: float | None
    accuracy_meters: float | None
    source: str
    client_ip: str
    country_code: str = ""


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
    # The FREEZE or STEP_UP command for core banking, committed with the verdict.
    command: NewCommand | None = None
    # The device's app list, packed (signals.inventory), replacing the previous one.
    inventory: bytes | None = None
    # With ``inventory``: the digest the device sent its list under, and that list in its stored form
    # (gateway.login.held_inventories), so that later logins may send the digest alone.  None for a
    # device that sends no digest: the row then holds its package names only.
    held_digest: str | None = None
    held_apps: bytes | None = None
    # Set instead when the list equals the stored one: that one's observed_at.  Only its time moves on
    # to this login's, never back, and only if no other login replaced it meanwhile: most phones keep
    # their apps, and packing and writing the same list again cost more than the evaluation.
    unchanged_inventory_at: float | None = None
    # Shadow scenarios that fired, recorded beside the verdict they did not change.
    shadow: tuple[ShadowFiring, ...] = ()
    policy_version: str = ""
    # The device's one-time value; a second login with it is refused as a replay.
    nonce: str = ""


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
class PhoneChangeMatch:
    """A stored phone-number change that involved a number looked up by an investigator."""

    event_id: str
    customer_id: str
    changed_at: float
    kind: str
    source: str
    hash_key_id: str
    # "previous", "new" or "both": which side of the change the number was.
    side: str


@dataclass(frozen=True, slots=True)
class HistoryWindows:
    """How far back one login looks; the policy's detector settings decide most of it."""

    phone_changes_since: float
    locations_since: float
    location_limit: int
    shared_device_since: float


@dataclass(frozen=True, slots=True)
class LoginHistory:
    known_device_ids: frozenset[str]
    latest_phone_change: PhoneNumberChangeSummary | None
    # The customer's located logins in the window, newest first.
    recent_locations: tuple[PastLocation, ...] = ()
    # Other customers seen on this device in the shared-device window.
    other_customers_on_device: int = 0
    previous_inventory: DeviceInventory | None = None
    # The inventory digest whose list the store holds for this device, when its SDK sends digests.
    held_digest: str | None = None
    # The verdict already stored under the login's request_id: the login is a retry, answered with it.
    earlier_verdict: StoredVerdict | None = None


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
    by_key_type: tuple[tuple[str, int], ...] = ()


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


@dataclass(frozen=True, slots=True)
class NewCommand:
    """A command about to enter the outbox; the store assigns its cursor and per-customer sequence."""

    command_id: str
    type: str
    customer_id: str
    verdict_id: str | None
    created_at: float
    issued_by: str
    # The serialized mtsg.v1.Command without sequence and cursor.
    body: bytes
    # The push endpoints that must receive it (none: only the gRPC stream serves it).
    endpoints: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StoredCommand:
    cursor: int
    command_id: str
    type: str
    customer_id: str
    sequence: int
    verdict_id: str | None
    created_at: float
    issued_by: str
    body: bytes


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A delivery a dispatcher holds a lease on and must now attempt."""

    command: StoredCommand
    endpoint: str
    attempts: int


@dataclass(frozen=True, slots=True)
class EndpointMove:
    """What ``CommandStore.move_pending`` did: deliveries ``moved`` to the new URL, ``kept`` because their
    command already had one there, and ``sending``: those a dispatcher is attempting at the old URL right
    now, left there (until ``sending_until`` at the latest) so that they are not sent to both."""

    moved: int
    kept: int
    sending: int
    sending_until: float


@dataclass(frozen=True, slots=True)
class DeliveryState:
    endpoint: str
    state: str
    attempts: int
    next_attempt_at: float
    last_attempt_at: float | None
    last_status: int | None
    last_error: str
    delivered_at: float | None


class DeliveryStatus(StrEnum):
    """Where one command's delivery to one endpoint stands, as ``command_deliveries.state`` stores it."""

    # Still to be sent: never tried, waiting for a retry, or held while its endpoint is disabled.
    PENDING = "pending"
    # The endpoint answered 2xx.
    DELIVERED = "delivered"
    # Every attempt failed: an operator must look at it (``mtsg commands redeliver``).
    DEAD = "dead"


class AttemptOutcome(StrEnum):
    """What one HTTP attempt means for its delivery, as ``command_attempts.outcome`` stores it."""

    DELIVERED = "delivered"
    # Failed; tried again at the attempt's ``next_attempt_at``.
    RETRY = "retry"
    # Failed with no attempts left: the delivery is dead-lettered.
    DEAD = "dead"
    # The endpoint answered 410 Gone: it is disabled, and the delivery waits for it.
    GONE = "gone"

    @property
    def status(self) -> DeliveryStatus:
        """The delivery's status after an attempt with this outcome."""
        if self is AttemptOutcome.DELIVERED:
            return DeliveryStatus.DELIVERED
        return DeliveryStatus.DEAD if self is AttemptOutcome.DEAD else DeliveryStatus.PENDING


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One HTTP attempt and what it means for the delivery."""

    endpoint: str
    attempt: int
    at: float
    duration_ms: float
    status: int | None
    outcome: AttemptOutcome
    error: str
    next_attempt_at: float = 0.0


@dataclass(frozen=True, slots=True)
class CommandQuery:
    """A page of the outbox, newest first; ``before`` is the last cursor of the previous page."""

    limit: int = 50
    before: int = 0
    customer_id: str = ""
    # "" (any) or a DeliveryStatus: commands with at least one delivery in that state.
    state: str = ""


@dataclass(frozen=True, slots=True)
class CommandOverview:
    command: StoredCommand
    deliveries: tuple[DeliveryState, ...]


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    """One applied version of the policy document."""

    version: int
    document: str
    document_sha256: str
    applied_by: str
    applied_at: float
    comment: str
    restored_version: int | None = None


@dataclass(frozen=True, slots=True)
class ShadowFiring:
    """A shadow scenario that fired on a verdict, and what it would have done."""

    scenario_id: str
    would_action: str


@dataclass(frozen=True, slots=True)
class ShadowSummary:
    """One shadow scenario over a period: how often it fired and how often it would have changed a verdict."""

    scenario_id: str
    would_action: str
    fired: int
    customers: int
    would_change: int
    by_actual_action: dict[str, int]
    policy_versions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VerdictQuery:
    customer_id: str
    since: float | None = None
    until: float | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class VerdictRow:
    verdict_id: str
    customer_id: str
    device_id: str
    action: str
    decided_at: float
    # The serialized CheckLoginResponse the app received.
    response: bytes
