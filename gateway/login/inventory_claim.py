"""What a login says about its inventory: a digest, perhaps the list it names, and the apps' activity.

A login that sends ``inventory_digest`` makes a claim the gateway checks here, at the edge:
the digest has its form, the activity names packages, and a list sent with the digest hashes
to it (docs/INVENTORY_DIGEST.md).  Whether the gateway holds a digest sent without its list is
the store's to say, after the login's history is read (``gateway.services.threat_signal``).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError, Message

from gateway.generated.mtsg.v1 import telemetry_pb2
from gateway.login.held_inventories import pack_held_apps
from gateway.login.inventory_digest import DIGEST_HEX_LENGTH, inventory_digest, is_digest
from gateway.violations import Violations

# A package name or bundle id; validation checks installed apps' names by the same rule.
PACKAGE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")
PACKAGE_NAME_RULE = "must be a package name or bundle id (letters, digits, '.', '_', '-')"
_DIGEST_FIELD = "telemetry.inventory_digest"


@dataclass(frozen=True, slots=True)
class InventoryClaim:
    """A login's inventory digest, the list's stored form when the list came too, and its activity."""

    digest: str
    # The list as the store keeps it (``pack_held_apps``); None when the login sent the digest alone.
    stored_form: bytes | None
    running: frozenset[str]
    foreground: frozenset[str]

    @property
    def listed(self) -> bool:
        return self.stored_form is not None


def app_activity(telemetry: Message, max_apps: int, v: Violations) -> tuple[frozenset[str], frozenset[str]]:
    """The running and foreground package names of ``telemetry.app_activity``, each name checked."""
    activity = telemetry.app_activity
    sets: list[frozenset[str]] = []
    for name in ("running_packages", "foreground_packages"):
        names = getattr(activity, name)
        path = f"telemetry.app_activity.{name}"
        if len(names) > max_apps:
            v.add(path, f"at most {max_apps} package names, got {len(names)}")
            sets.append(frozenset())
            continue
        for position, package in enumerate(names):
            if not PACKAGE_NAME.fullmatch(package):
                v.add(f"{path}[{position}]", PACKAGE_NAME_RULE)
        sets.append(frozenset(names))
    return sets[0], sets[1]


def inventory_claim(
    telemetry: Message,
    running: frozenset[str],
    foreground: frozenset[str],
    v: Violations,
) -> InventoryClaim | None:
    """The claim of a login that sent a digest (None when it sent none); problems go to ``v``.

    ``telemetry.installed_apps`` are messages, or their encoded bytes on the serving path
    (``gateway.login.wire``).  The list is hashed only when everything else about it passed,
    so a list with a bad app is named by its fields, not by a digest mismatch.
    """
    digest = telemetry.inventory_digest
    if not digest:
        return None
    if not is_digest(digest):
        v.add(
            _DIGEST_FIELD,
            f"must be {DIGEST_HEX_LENGTH} lower-case hex digits: the SHA-256 of the canonical inventory"
            " (docs/INVENTORY_DIGEST.md)",
        )
        return None
    if not telemetry.installed_apps:
        return InventoryClaim(digest, None, running, foreground)
    if v.found:
        return None
    apps = _messages(telemetry.installed_apps)
    if apps is None:
        return None
    computed = inventory_digest(apps)
    if not hmac.compare_digest(computed, digest):
        v.add(
            _DIGEST_FIELD,
            f"does not match installed_apps, whose canonical form hashes to {computed}"
            " (docs/INVENTORY_DIGEST.md has the form and a test vector)",
        )
        return None
    return InventoryClaim(digest, pack_held_apps(telemetry.installed_apps), running, foreground)


def _messages(apps: Sequence[bytes | telemetry_pb2.InstalledApp]) -> list[telemetry_pb2.InstalledApp] | None:
    if not apps or not isinstance(apps[0], bytes):
        return list(apps)  # type: ignore[arg-type]  # already messages
    try:
        return [telemetry_pb2.InstalledApp.FromString(each) for each in apps]
    except DecodeError:
        return None
