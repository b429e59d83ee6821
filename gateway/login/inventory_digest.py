"""The inventory digest: one SHA-256 that names a device's whole app list.

Both sides compute it, the SDK on the phone and the gateway on what arrived, so the
canonical form is written down exactly in docs/INVENTORY_DIGEST.md with a test vector, and
this module is its reference implementation.  In short: each app becomes a JSON array of its
16 inventory fields in field-number order (running and foreground are left out: they change
from one login to the next and travel in ``AppActivity``); the rows are sorted by package name;
the document ``["mtsg-inventory-v1",[row,...]]`` is written without spaces, its strings escaped
only where JSON requires, and hashed as UTF-8.

Values are hashed as sent, not as the gateway normalises them (an upper-case APK digest stays
upper-case), so an SDK needs no knowledge of the gateway's rules to compute it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from operator import attrgetter, itemgetter
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from gateway.generated.mtsg.v1 import telemetry_pb2

CANONICAL_TAG = "mtsg-inventory-v1"
DIGEST_HEX_LENGTH = 64

# Field numbers 1 to 16 of InstalledApp; 17 (running) and 18 (foreground) are per-login state.
_ROW_FIELDS = attrgetter(
    "package_name",
    "label",
    "version_name",
    "version_code",
    "installer_package",
    "installer_class",
    "apk_sha256",
    "signing_cert_sha256",
    "signing_cert_sha1",
    "system_app",
    "first_install_time",
    "last_update_time",
    "granted_permissions",
    "accessibility_service_enabled",
    "device_admin",
    "draw_over_apps",
)
_FIRST_INSTALL, _LAST_UPDATE, _PERMISSIONS = 10, 11, 12
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_PACKAGE = itemgetter(0)


def _time(stamp: Timestamp) -> list[int] | None:
    """``[seconds, nanos]``, or null for a time the SDK left unset (both zero)."""
    seconds, nanos = stamp.seconds, stamp.nanos
    return None if seconds == 0 and nanos == 0 else [seconds, nanos]


def _row(app: telemetry_pb2.InstalledApp) -> list[Any]:
    row = list(_ROW_FIELDS(app))
    row[_FIRST_INSTALL] = _time(row[_FIRST_INSTALL])
    row[_LAST_UPDATE] = _time(row[_LAST_UPDATE])
    row[_PERMISSIONS] = sorted(row[_PERMISSIONS])
    return row


def canonical_inventory(apps: Iterable[telemetry_pb2.InstalledApp]) -> bytes:
    """The canonical document of an app list, the bytes its digest is taken over.

    Python compares strings by code point, which orders them as their UTF-8 bytes do: the order
    the manual gives.  Two apps with one package name (a list the gateway refuses) are ordered by
    their rows' text, so even such a list has exactly one digest.
    """
    rows = sorted(map(_row, apps), key=_PACKAGE)
    if len({row[0] for row in rows}) != len(rows):
        rows.sort(key=lambda row: (row[0], _ENCODE(row)))
    return _ENCODE([CANONICAL_TAG, rows]).encode("utf-8")


def inventory_digest(apps: Iterable[telemetry_pb2.InstalledApp]) -> str:
    """The SHA-256 of ``canonical_inventory(apps)``, as 64 lower-case hex digits."""
    return hashlib.sha256(canonical_inventory(apps)).hexdigest()


def is_digest(value: str) -> bool:
    """Whether ``value`` has the digest's form: 64 lower-case hex digits."""
    return len(value) == DIGEST_HEX_LENGTH and all(character in "0123456789abcdef" for character in value)
