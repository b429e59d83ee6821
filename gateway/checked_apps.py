"""Installed apps already checked, found again by their encoded bytes.

Phones hold mostly the same apps: the same store build of a messenger, a browser or a
maps app has the same bytes on every device that reports it.  So each app that passed
validation is kept, under the exact bytes it arrived as (``gateway.login_wire``), with
its converted value; a later login that reports the same bytes gets that value by one
dictionary look-up instead of decoding and checking 17 fields again (issue 3).  Only
the apps not kept yet are decoded and checked, by the same fast path as before; any
problem sends the whole app list down the full path, which names every bad field.

Identical bytes decode to an identical app, and every check of an app depends on the
app alone, save two: no two apps may share a package name (checked over the whole list
at every login) and no app time may lie beyond ``latest`` (now plus the allowed skew).
``latest`` only grows with the clock, so an app once in the window stays in it; should
the clock step back past the newest time kept, the kept apps are dropped.

Memory is bounded by ``max_entries`` (1.3 KB each for the bench's apps: 26 MB at the default
20,000); the oldest entry leaves first.
A caller sending endless distinct apps costs only the hits it pushes out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from google.protobuf.message import DecodeError
from prometheus_client import Counter

from gateway.generated.mtsg.v1 import telemetry_pb2
from gateway.validation import EARLIEST_TIME, Limits, Violations, check_apps, clean_apps
from signals.telemetry import InstalledApp


def _newest_time(app: InstalledApp) -> float:
    times = [time for time in (app.first_install_time, app.last_update_time) if time is not None]
    return max(times, default=EARLIEST_TIME)


class CheckedApps:
    """The apps checked under ``limits``, at most ``max_entries`` of them (0 keeps none)."""

    def __init__(
        self, limits: Limits, max_entries: int, hits: Counter | None = None, misses: Counter | None = None
    ) -> None:
        self._limits = limits
        self._max_entries = max_entries
        self._kept: OrderedDict[bytes, InstalledApp] = OrderedDict()
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
        for each, app in zip(encoded, apps, strict=True):
            self._keep(each, app)
        return apps

    def _keep(self, encoded: bytes, app: InstalledApp) -> None:
        if self._max_entries <= 0:
            return
        self._kept[encoded] = app
        self._newest_kept_time = max(self._newest_kept_time, _newest_time(app))
        if len(self._kept) > self._max_entries:
            self._kept.popitem(last=False)

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
