"""What the gateway knows about the customer before this login, as plain data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PhoneNumberChangeSummary:
    """The latest phone-number change inside the policy window (no numbers: only when and how)."""

    changed_at: float
    kind: str
    source: str


@dataclass(frozen=True, slots=True)
class LoginContext:
    """History the detectors compare the login with.

    ``now`` is the gateway's clock, passed in so the brain never reads one.
    ``known_device_ids`` are the customer's devices seen before this login.
    """

    now: float
    known_device_ids: frozenset[str] = frozenset()
    recent_phone_change: PhoneNumberChangeSummary | None = None
