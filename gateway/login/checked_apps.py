"""Installed apps already checked, found again by their encoded bytes.

Phones hold mostly the same apps: the same store build of a messenger, a browser or a
maps app has the same bytes on every device that reports it.  So each app that passed
validation is kept, under the exact bytes it arrived as (``gateway.login.wire``), with
its converted value; a later login that reports the same bytes gets that value by one
dictionary look-up instead of decoding and checking 17 fields again.  Only
the apps not kept yet are decoded and checked, by the same fast path as before; any
problem sends the whole app list down the full path, which names every bad field.

Identical bytes decode to an identical app, and every check of an app depends on the
app alone, save two: no two apps may share a package name (checked over the whole list
at every login) and no app time may lie beyond ``latest`` (now plus the allowed skew).
``latest`` only grows with the clock, so an app once in the window stays in it; should
the clock step back past the newest time kept, the kept apps are dropped.

Memory is bounded twice: by ``max_entries`` and by ``max_bytes``, which counts each kept app at
``KEPT_COST_FACTOR`` times its encoded size plus ``KEPT_OVERHEAD_BYTES`` (the key, the decoded value
and the dictionary's share); the oldest entries leave first. The app token ships inside the banking
app, so the callers are not trusted: an app larger than ``MAX_KEPT_APP_BYTES``, or one carrying
fields the contract does not define (unknown protobuf fields, which the decoded value drops), is
checked and used for its login and never kept. A caller sending endless distinct apps costs only
the hits it pushes out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from google.protobuf.message import DecodeError
from prometheus_client import Counter

from gateway.generated.mtsg.v1 import telemetry_pb2
from gateway.login.validation import Limits, check_apps, clean_apps
from gateway.violations import EARLIEST_TIME, Violations
from signals.telemetry import InstalledApp

# The largest app kept: a store app with a long permission list encodes to 2-3 KB.
MAX_KEPT_APP_BYTES = 8 * 1024
# What one kept app costs in memory, as a multiple of its encoded size plus a fixed part: the bytes
# as the key, the decoded strings and tuples, and the entry in the ordered dictionary.
KEPT_COST_FACTOR = 3
KEPT_OVERHEAD_BYTES = 600


def kept_cost(encoded_size: int) -> int:
    return KEPT_COST_FACTOR * encoded_size + KEPT_OVERHEAD_BYTES


def _newest_time(app: InstalledApp) -> float:
    times = [time for time in (app.first_install_time, app.last_update_time) if time is not None]
    return max(times, default=EARLIEST_TIME)


class CheckedApps:
    """The apps checked under ``limits``, at most ``max_entries`` of them (0 keeps none)."""

    def __init__(
        self,
        limits: Limits,
        max_entries: int,
        hits: Counter | None = None,
        misses: Counter | None = None,
        max_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self._limits = limits
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._kept: OrderedDict[bytes, InstalledApp] = OrderedDict()
        self.kept_bytes = 0  # the kept apps' cost, as kept_cost counts it
        # The newest app time among the kept apps: while ``latest`` is not before it, all of them are in the window.
        self._newest_kept_time = float(EARLIEST_TIME)
        self._hits = hits
        self._misses = misses

    def __len__(self) -> int:
        return len(self._kept)

    def convert(self, encoded: Sequence[bytes], latest: float, violations: Violations) -> tuple[InstalledApp, ...]:
        """The apps of one login, checked; problems go to ``violations`` (the result is then incomplete)."""
        if self._newest_kept_time > latest:
            self._kept.clear()
            self.kept_bytes = 0
            self._newest_kept_time = float(EARLIEST_TIME)
        found = list(map(self._kept.get, encoded))
        missing = [index for index, app in enumerate(found) if app is None] if None in found else []
        self._count(len(found) - len(missing), len(missing))
        if missing:
            checked = self._check_new([encoded[index] for index in missing], latest)
            if checked is None:
                return self._full_path(encoded, latest, violations)
            for index, app in zip(missing, checked, strict=True):
                found[index] = app
        apps: tuple[InstalledApp, ...] = tuple(found)  # type: ignore[arg-type]  # no None is left
        if len({app.package_name for app in apps}) != len(apps):
            return self._full_path(encoded, latest, violations)
        return apps

    def _check_new(self, encoded: list[bytes], latest: float) -> tuple[InstalledApp, ...] | None:
        """Decode and check apps not kept yet, and keep them; None when any of them is not clean."""
        try:
            messages = [telemetry_pb2.InstalledApp.FromString(each) for each in encoded]
        except DecodeError:
            return None
        apps = clean_apps(messages, self._limits, latest)
        if apps is None:
            return None
        return tuple(self._keep(each, app, message) for each, app, message in zip(encoded, apps, messages, strict=True))

    def _keep(self, encoded: bytes, app: InstalledApp, message: telemetry_pb2.InstalledApp) -> InstalledApp:
        """Keep ``app`` under its bytes when they are worth keeping; the object to use for this login."""
        size = len(encoded)
        if self._max_entries <= 0 or size > MAX_KEPT_APP_BYTES:
            return app
        # Without the fields the contract does not define, at any depth, the app is smaller: they came along.
        message.DiscardUnknownFields()
        if message.ByteSize() != size:
            return app
        cost = kept_cost(size)
        if cost > self._max_bytes:
            return app
        if (already := self._kept.get(encoded)) is not None:  # the same bytes twice in one login
            return already
        kept = app._replace(kept_bytes=size)
        self._kept[encoded] = kept
        self.kept_bytes += cost
        self._newest_kept_time = max(self._newest_kept_time, _newest_time(kept))
        while len(self._kept) > self._max_entries or self.kept_bytes > self._max_bytes:
            oldest, _ = self._kept.popitem(last=False)
            self.kept_bytes -= kept_cost(len(oldest))
        return kept

    def _full_path(self, encoded: Sequence[bytes], latest: float, violations: Violations) -> tuple[InstalledApp, ...]:
        """Every app decoded and checked field by field, each problem named with the app's index."""
        messages = []
        for index, each in enumerate(encoded):
            try:
                messages.append(telemetry_pb2.InstalledApp.FromString(each))
            except DecodeError:
                violations.add(f"telemetry.installed_apps[{index}]", "is not a valid InstalledApp message")
        if len(messages) < len(encoded):
            return ()
        return check_apps(messages, self._limits, latest, violations)

    def _count(self, hits: int, misses: int) -> None:
        if self._hits is not None and hits:
            self._hits.inc(hits)
        if self._misses is not None and misses:
            self._misses.inc(misses)
