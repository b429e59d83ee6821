"""The matcher: an immutable in-memory index of the registry, swapped whole when it changes.

A login carries a few hundred apps and the registry may hold millions of
indicators, so lookups are dictionary probes (one per key type per app) and the
index keeps each indicator in a few packed arrays instead of one Python object
apiece: at a million entries that is the difference between ~200 MB and ~1 GB.

Changes arrive one by one while the registry is large, and rebuilding a million
entries takes seconds.  So a ``Matcher`` is a large *base* index plus a small
*overlay* of indicators changed since the base was built; an indicator in the
overlay shadows its older self in the base.  ``with_changes`` returns a new
matcher in microseconds-to-milliseconds; the shell rebuilds the base in the
background when the overlay grows (``overlay_size``).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from types import MappingProxyType
from typing import Protocol

from blocklists.entry import Category, EntrySeverity, Indicator, KeyType, entry_id_for

_CATEGORIES = tuple(Category)
_SEVERITIES = tuple(EntrySeverity)
_KEY_TYPES = tuple(KeyType)
_NO_TIME = math.nan
_APK_SHA256 = attrgetter("apk_sha256")
_CERT_SHA256 = attrgetter("signing_cert_sha256")
_CERT_SHA1 = attrgetter("signing_cert_sha1")
_PACKAGE_NAME = attrgetter("package_name")
# Installed apps an index remembers as having no key in any of its tables (``_ClearedApps``): above
# the gateway's app cache (20,000 by default), whose apps are the ones handed over again.
REMEMBERED_CLEARED_APPS = 32_768
# And at most this many bytes of them, as they arrived (``kept_bytes``): what a caller sends is never
# held beyond a bound that counts bytes.
REMEMBERED_CLEARED_BYTES = 64 * 1024 * 1024


class AppKeys(Protocol):
    """What the matcher reads of an installed app (the signals room's InstalledApp fits)."""

    @property
    def package_name(self) -> str: ...
    @property
    def apk_sha256(self) -> str: ...
    @property
    def signing_cert_sha256(self) -> str: ...
    @property
    def signing_cert_sha1(self) -> str: ...
    @property
    def kept_bytes(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Match:
    """One indicator that matched one installed app."""

    entry_id: str
    key_type: KeyType
    value: str
    app_package: str
    category: Category
    severity: EntrySeverity
    family: str
    source: str


class _ClearedApps:
    """Installed apps, the very objects, found at earlier logins to have no key in an index's tables.

    At a million entries each probe of the big tables misses the CPU's caches: a login's ~1,100
    values cost as much to look up as the whole rest of the evaluation, and remembering the values
    still cost a good share of that in hashing and set probes.  But the gateway hands the matcher the same object
    each time a device reports the same build (``gateway.login.checked_apps``), so one probe by ``id`` per
    app tells which apps are new.  The dict holds each app it remembers, so no other object can take
    its ``id`` meanwhile; apps are immutable and an index never changes, so an app cleared once stays
    cleared.  At the bound the memory starts over.
    """

    __slots__ = ("_apps", "_bytes")

    def __init__(self) -> None:
        self._apps: dict[int, AppKeys] = {}
        self._bytes = 0

    def unseen(self, apps: Sequence[AppKeys]) -> list[AppKeys]:
        """The apps of ``apps`` not remembered, in their order (the all-known case asked in C)."""
        known = self._apps
        if all(map(known.__contains__, map(id, apps))):
            return []
        return [app for app in apps if id(app) not in known]

    def remember(self, apps: Sequence[AppKeys]) -> None:
        """Remember the apps the gateway keeps (``kept_bytes``): one made for a single login never comes back."""
        kept = [app for app in apps if app.kept_bytes > 0]
        if not kept:
            return
        size = sum(app.kept_bytes for app in kept)
        if len(self._apps) + len(kept) > REMEMBERED_CLEARED_APPS or self._bytes + size > REMEMBERED_CLEARED_BYTES:
            self._apps.clear()
            self._bytes = 0
        self._apps.update(zip(map(id, kept), kept, strict=True))
        self._bytes += size


@dataclass(frozen=True, slots=True)
class Screening:
    """Which apps of one unchanging app list have a key in a matcher's indexes, by position.

    Validity windows play no part (they are applied when matching), so a screening stays true for
    as long as the indexes it was made against: a registry version that keeps its base and changes
    only its overlay (``Matcher.with_changes``) has only the overlay screened again, a cost that
    follows the registry's changes, not the size of its base.
    """

    base: object
    base_hits: tuple[int, ...]
    overlay: object
    overlay_hits: tuple[int, ...]


class _Index:
    """Packed, read-only index of indicators that can match (revoked ones are left out)."""

    __slots__ = (
        "_by_apk",
        "_by_cert1",
        "_by_cert256",
        "_by_package",
        "_by_package_cert",
        "_category",
        "_cleared",
        "_family",
        "_key_type",
        "_names",
        "_next",
        "_severity",
        "_source",
        "_valid_from",
        "_valid_until",
        "size",
    )

    def __init__(self, indicators: Iterable[Indicator]) -> None:
        self._by_apk: dict[str, int] = {}
        self._by_cert256: dict[str, int] = {}
        self._by_cert1: dict[str, int] = {}
        self._by_package: dict[str, int] = {}
        self._by_package_cert: dict[str, dict[str, int]] = {}
        self._cleared = _ClearedApps()
        self._next = array("i")
        self._key_type = array("B")
        self._category = array("B")
        self._severity = array("B")
        self._family = array("I")
        self._source = array("I")
        self._valid_from = array("d")
        self._valid_until = array("d")
        # family and source names repeat across thousands of entries: keep each once.
        self._names: list[str] = []
        name_ids: dict[str, int] = {}
        key_type_codes = {kind: code for code, kind in enumerate(_KEY_TYPES)}
        category_codes = {category: code for code, category in enumerate(_CATEGORIES)}
        severity_codes = {severity: code for code, severity in enumerate(_SEVERITIES)}
        tables = {
            KeyType.APK_SHA256: self._by_apk,
            KeyType.CERT_SHA256: self._by_cert256,
            KeyType.CERT_SHA1: self._by_cert1,
            KeyType.PACKAGE_NAME: self._by_package,
        }
        slot = 0
        for indicator in indicators:
            if indicator.revoked:
                continue
            if indicator.key_type is KeyType.PACKAGE_AND_CERT:
                table = self._by_package_cert.setdefault(indicator.package_name, {})
            else:
                table = tables[indicator.key_type]
            self._next.append(table.get(indicator.value, -1))
            table[indicator.value] = slot
            self._key_type.append(key_type_codes[indicator.key_type])
            self._category.append(category_codes[indicator.category])
            self._severity.append(severity_codes[indicator.severity])
            for names, name in ((self._family, indicator.family), (self._source, indicator.source)):
                name_id = name_ids.get(name)
                if name_id is None:
                    name_id = name_ids[name] = len(self._names)
                    self._names.append(name)
                names.append(name_id)
            self._valid_from.append(_NO_TIME if indicator.valid_from is None else indicator.valid_from)
            self._valid_until.append(_NO_TIME if indicator.valid_until is None else indicator.valid_until)
            slot += 1
        self.size = slot

    def _candidates(self, apps: Sequence[AppKeys]) -> list[AppKeys]:
        """The apps with a name or digest among this index's keys: the only ones worth matching.

        Nearly every login matches nothing, and nearly all of its apps were seen before
        (``_ClearedApps``).  The new ones are asked in C first, each table's keys against a column of
        their values; only when that finds something are they taken one by one.
        """
        if not self.size:
            return []
        unseen = self._cleared.unseen(apps)
        if not unseen:
            return []
        packages = list(map(_PACKAGE_NAME, unseen))
        certs_sha256 = list(map(_CERT_SHA256, unseen))
        if (
            self._by_apk.keys().isdisjoint(map(_APK_SHA256, unseen))
            and self._by_cert256.keys().isdisjoint(certs_sha256)
            and self._by_cert1.keys().isdisjoint(map(_CERT_SHA1, unseen))
            and self._by_package.keys().isdisjoint(packages)
            and self._by_package_cert.keys().isdisjoint(packages)
        ):
            self._cleared.remember(unseen)
            return []
        hits: list[AppKeys] = []
        cleared: list[AppKeys] = []
        for app in unseen:
            (hits if self._has_key(app) else cleared).append(app)
        self._cleared.remember(cleared)
        return hits

    def hit_positions(self, apps: Sequence[AppKeys]) -> tuple[int, ...]:
        """The positions of the apps with a name or digest among this index's keys."""
        if not self.size or (
            self._by_apk.keys().isdisjoint(map(_APK_SHA256, apps))
            and self._by_cert256.keys().isdisjoint(map(_CERT_SHA256, apps))
            and self._by_cert1.keys().isdisjoint(map(_CERT_SHA1, apps))
            and self._by_package.keys().isdisjoint(map(_PACKAGE_NAME, apps))
            and self._by_package_cert.keys().isdisjoint(map(_PACKAGE_NAME, apps))
        ):
            return ()
        return tuple(position for position, app in enumerate(apps) if self._has_key(app))

    def _has_key(self, app: AppKeys) -> bool:
        certs = self._by_package_cert.get(app.package_name)
        return (
            app.apk_sha256 in self._by_apk
            or app.signing_cert_sha256 in self._by_cert256
            or app.signing_cert_sha1 in self._by_cert1
            or app.package_name in self._by_package
            or (certs is not None and app.signing_cert_sha256 in certs)
        )

    def _collect(self, slot: int, value: str, app: AppKeys, now: float, out: list[Match]) -> None:
        while slot >= 0:
            start, end = self._valid_from[slot], self._valid_until[slot]
            # NaN compares false both ways: an open bound never excludes.
            if not (now < start or now >= end):
                key_type = _KEY_TYPES[self._key_type[slot]]
                package = app.package_name if key_type is KeyType.PACKAGE_AND_CERT else ""
                source = self._names[self._source[slot]]
                out.append(
                    Match(
                        entry_id=entry_id_for(key_type.value, value, package, source),
                        key_type=key_type,
                        value=value,
                        app_package=app.package_name,
                        category=_CATEGORIES[self._category[slot]],
                        severity=_SEVERITIES[self._severity[slot]],
                        family=self._names[self._family[slot]],
                        source=source,
                    )
                )
            slot = self._next[slot]

    def match(self, apps: Sequence[AppKeys], now: float) -> list[Match]:
        return self.match_candidates(self._candidates(apps), now)

    def match_candidates(self, candidates: Iterable[AppKeys], now: float) -> list[Match]:
        """The matches of apps known to hold a key (``_candidates``, ``hit_positions``)."""
        found: list[Match] = []
        by_apk, by_cert256, by_cert1 = self._by_apk, self._by_cert256, self._by_cert1
        by_package, by_package_cert = self._by_package, self._by_package_cert
        for app in candidates:
            # Digests are "" when the app did not report them; "" is never a key.
            apk, cert256 = app.apk_sha256, app.signing_cert_sha256
            slot = by_apk.get(apk)
            if slot is not None:
                self._collect(slot, apk, app, now, found)
            slot = by_cert256.get(cert256)
            if slot is not None:
                self._collect(slot, cert256, app, now, found)
            slot = by_cert1.get(app.signing_cert_sha1)
            if slot is not None:
                self._collect(slot, app.signing_cert_sha1, app, now, found)
            package = app.package_name
            slot = by_package.get(package)
            if slot is not None:
                self._collect(slot, package, app, now, found)
            certs = by_package_cert.get(package)
            if certs is not None:
                slot = certs.get(cert256)
                if slot is not None:
                    self._collect(slot, cert256, app, now, found)
        return found


@dataclass(frozen=True, slots=True)
class Matcher:
    """A version of the registry, ready to match.  Build with ``Matcher.build``; never mutated."""

    version: int
    _base: _Index
    _overlay: _Index
    _overlay_indicators: Mapping[str, Indicator]

    @classmethod
    def build(cls, indicators: Iterable[Indicator], version: int) -> Matcher:
        return cls(version, _Index(indicators), _Index(()), MappingProxyType({}))

    @classmethod
    def empty(cls) -> Matcher:
        return cls.build((), 0)

    @property
    def size(self) -> int:
        """Indicators indexed (revoked ones excluded; expired ones still counted until a rebuild)."""
        return self._base.size + self._overlay.size

    @property
    def overlay_size(self) -> int:
        """Changed indicators held beside the base; the shell rebuilds when this grows large."""
        return len(self._overlay_indicators)

    def with_changes(self, changed: Iterable[Indicator], version: int) -> Matcher:
        """A new matcher in which ``changed`` (added, updated or revoked) replace their earlier versions."""
        overlay = dict(self._overlay_indicators)
        for indicator in changed:
            overlay[indicator.entry_id] = indicator
        return Matcher(version, self._base, _Index(overlay.values()), MappingProxyType(overlay))

    def screen(self, apps: Sequence[AppKeys], earlier: Screening | None = None) -> Screening:
        """Which of ``apps`` hold a key here; the parts of ``earlier`` (the same list's screening by an
        earlier version) whose index this version still uses are taken as they are."""
        if earlier is not None and earlier.base is self._base:
            base_hits = earlier.base_hits
        else:
            base_hits = self._base.hit_positions(apps)
        if earlier is not None and earlier.overlay is self._overlay:
            if earlier.base is self._base:
                return earlier
            overlay_hits = earlier.overlay_hits
        else:
            overlay_hits = self._overlay.hit_positions(apps)
        return Screening(self._base, base_hits, self._overlay, overlay_hits)

    def match(self, apps: Iterable[AppKeys], now: float, screening: Screening | None = None) -> list[Match]:
        """Every active indicator matching any of ``apps`` at time ``now`` (base matches first, then changed ones).

        With ``screening`` (this version's, of the same list: ``screen``), only the apps it names are
        looked at; a screening made against other indexes is ignored.
        """
        apps = apps if isinstance(apps, (list, tuple)) else list(apps)
        if screening is not None and screening.base is self._base and screening.overlay is self._overlay:
            found = self._base.match_candidates([apps[position] for position in screening.base_hits], now)
            overlay = self._overlay.match_candidates([apps[position] for position in screening.overlay_hits], now)
        else:
            found = self._base.match(apps, now)
            overlay = self._overlay.match(apps, now) if self._overlay_indicators else []
        if self._overlay_indicators:
            shadowed = self._overlay_indicators
            found = [match for match in found if match.entry_id not in shadowed]
            found.extend(overlay)
        return found
