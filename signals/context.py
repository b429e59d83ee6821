"""What the gateway knows about the customer and the device before this login, as plain data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PhoneNumberChangeSummary:
    """The latest phone-number change inside the policy window (no numbers: only when and how)."""

    changed_at: float
    kind: str
    source: str


@dataclass(frozen=True, slots=True)
class PastLocation:
    """Where one earlier login of the customer was, as reported then."""

    observed_at: float
    latitude: float
    longitude: float
    accuracy_meters: float = 0.0
    country_code: str = ""


@dataclass(frozen=True, slots=True)
class DeviceInventory:
    """The device's app list at its previous login (stored compactly, see signals.inventory)."""

    observed_at: float
    package_names: frozenset[str]


@dataclass(frozen=True, slots=True)
class LoginContext:
    """History the detectors compare the login with.

    ``now`` is the gateway's clock, passed in so the brain never reads one.
    ``known_device_ids`` are the customer's devices seen before this login;
    ``recent_locations`` are the customer's recent located logins, newest first;
    ``other_customers_on_device`` counts other customers seen on this device in the
    shared-device window; ``previous_inventory`` is None on a device's first login.
    """

    now: float
    known_device_ids: frozenset[str] = frozenset()
    recent_phone_change: PhoneNumberChangeSummary | None = None
    recent_locations: tuple[PastLocation, ...] = ()
    other_customers_on_device: int = 0
    previous_inventory: DeviceInventory | None = None
