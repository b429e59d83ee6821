"""Inventories the gateway holds by digest: their stored form, and the ones kept in memory.

A device that sends its app list with its digest has the list stored with the device
(``device_inventories``), so any replica can serve the device's later logins that send only the
digest.  The stored form is the list as protobuf bytes, zlib-compressed; the per-login flags
(running, foreground) are cleared when it is read back: those come with each login's ``AppActivity``.

Reading the stored list back costs a decode and a conversion, so each replica also keeps the
inventories it used recently in memory, converted, with their registry screening
(``blocklists.matcher.Screening``): a login with an unchanged inventory then costs a dictionary
look-up and the few apps its activity names, whatever the number of installed apps.  Memory is
bounded by an estimate of each entry's size; the least recently used entries leave first.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from blocklists.matcher import Screening
from gateway.generated.mtsg.v1 import telemetry_pb2
from signals.telemetry import InstalledApp

# What one held app costs in memory, beside its strings: the tuple, two times, the permission tuple.
_APP_OVERHEAD_BYTES = 400


@dataclass(slots=True)
class HeldApps:
    """One inventory in memory: its apps without activity, their names, where each one sits."""

    digest: str
    apps: tuple[InstalledApp, ...]
    package_names: frozenset[str]
    positions: dict[str, int]
    cost: int
    # The last registry screening of these apps; replaced when the registry changes.
    screening: Screening | None = field(default=None)

    @classmethod
    def of(cls, digest: str, apps: Sequence[InstalledApp]) -> HeldApps:
        quiet = tuple(
            app._replace(running=False, foreground=False) if app.running or app.foreground else app for app in apps
        )
        positions = {app.package_name: index for index, app in enumerate(quiet)}
        cost = sum(_APP_OVERHEAD_BYTES + len(app.package_name) + len(app.label) + 200 for app in quiet)
        return cls(digest, quiet, frozenset(positions), positions, cost)


def with_activity(
    apps: tuple[InstalledApp, ...],
    positions: dict[str, int],
    running: frozenset[str],
    foreground: frozenset[str],
) -> tuple[InstalledApp, ...]:
    """``apps`` with the named ones marked running or in the foreground; names not installed are ignored.

    Only the named apps are copied: the cost follows the activity, not the inventory.
    """
    named = (running | foreground) & positions.keys()
    if not named:
        return apps
    changed = list(apps)
    for name in named:
        index = positions[name]
        app = changed[index]
        changed[index] = app._replace(
            running=app.running or name in running, foreground=app.foreground or name in foreground
        )
    return tuple(changed)


# The tag of LoginTelemetry.installed_apps (field 9, length-delimited) that opens each app in the stored form.
_APPS_TAG = b"\x4a"


def pack_held_apps(apps: Sequence[bytes | telemetry_pb2.InstalledApp]) -> bytes:
    """The stored form of a list: its apps as a LoginTelemetry holding only them, compressed.

    Apps that arrived as bytes (``gateway.login.wire``) are framed as they are, not encoded again;
    their running and foreground flags are cleared when the list is read back (``HeldApps.of``).
    """
    if apps and isinstance(apps[0], bytes):
        framed = b"".join(_APPS_TAG + _varint(len(each)) + each for each in apps)  # type: ignore[operator]
    else:
        holder = telemetry_pb2.LoginTelemetry(installed_apps=apps)  # type: ignore[arg-type]  # messages here
        framed = holder.SerializeToString()
    return zlib.compress(framed, 1)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def unpack_held_apps(blob: bytes) -> list[telemetry_pb2.InstalledApp] | None:
    """The stored list's apps; None when the blob is damaged (the device then sends its list again)."""
    try:
        holder = telemetry_pb2.LoginTelemetry.FromString(zlib.decompress(blob))
    except (zlib.error, ValueError):
        return None
    return list(holder.installed_apps)


class HeldInventories:
    """The inventories used recently, by digest, within ``max_bytes`` (0 keeps none)."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._held: OrderedDict[str, HeldApps] = OrderedDict()
        self.held_bytes = 0

    def __len__(self) -> int:
        return len(self._held)

    def get(self, digest: str) -> HeldApps | None:
        held = self._held.get(digest)
        if held is not None:
            self._held.move_to_end(digest)
        return held

    def keep(self, held: HeldApps) -> HeldApps:
        if held.cost > self._max_bytes:
            return held
        earlier = self._held.pop(held.digest, None)
        if earlier is not None:
            self.held_bytes -= earlier.cost
        self._held[held.digest] = held
        self.held_bytes += held.cost
        while self.held_bytes > self._max_bytes:
            _, oldest = self._held.popitem(last=False)
            self.held_bytes -= oldest.cost
        return held
