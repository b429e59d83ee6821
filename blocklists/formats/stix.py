"""STIX 2.1 bundles: the indicator form threat-intel platforms and MVT exchange.

Read: ``indicator`` objects whose pattern compares an app property, in the forms
MVT reads — ``[app:id = '…']``, ``[app:cert.sha256 = '…']``, ``[app:cert.sha1 = '…']``,
``[file:hashes.'SHA-256' = '…']`` / ``[file:hashes.sha256 = '…']`` — joined by OR
(each becomes an entry) or ``app:id AND app:cert.sha256`` (a package + cert pair).
The family comes from the ``malware`` object an ``indicates`` relationship points
at; the category from ``x_mtsg_category`` (on the indicator or the malware), else
the malware's ``malware_types``, else the importer's default.  Indicators about
things mtsg cannot see on a phone (domains, IPs, URLs) are skipped and counted,
not refused: one feed commonly mixes both.

Write: the same shape, with deterministic ids so re-exports diff cleanly.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from blocklists.entry import Category, Indicator, InvalidIndicatorError, KeyType, make_indicator, parse_category
from blocklists.formats import FeedFormatError, ReadStats, format_timestamp, timestamp_field

# Where the STIX vocabulary has a word for one of our categories.
_MALWARE_TYPES = {
    "spyware": Category.SPYWARE,
    "stalkerware": Category.STALKERWARE,
    "remote-access-trojan": Category.REMOTE_CONTROL,
    "dropper": Category.DROPPER,
    "rootkit": Category.ROOT_TOOL,
}
_PROPERTIES = {
    "app:id": KeyType.PACKAGE_NAME,
    "app:cert.sha256": KeyType.CERT_SHA256,
    "app:cert.sha1": KeyType.CERT_SHA1,
    "file:hashes.'sha-256'": KeyType.APK_SHA256,
    "file:hashes.sha256": KeyType.APK_SHA256,
    "file:hashes.'sha256'": KeyType.APK_SHA256,
}
_TOKEN = re.compile(
    r"\s*(?:(?P<open>\[)|(?P<close>\])|(?P<op>AND|OR)\b|"
    r"(?P<path>[a-z0-9-]+:[A-Za-z0-9_.'-]+)\s*=\s*'(?P<value>(?:[^'\\]|\\.)*)')"
)
# A fixed namespace so the same entry always exports under the same STIX id.
_NAMESPACE = uuid.UUID("6f1a1c52-5d3e-4c9a-9a57-3b8f2f0d7a11")


class PatternError(ValueError):
    """The pattern is not STIX we can read."""


def _parse_pattern(pattern: str) -> list[list[tuple[str, str, str]]]:
    """Observation expressions (OR-ed) of comparisons, each with the operator joining them."""
    observations: list[list[tuple[str, str, str]]] = []
    current: list[tuple[str, str, str]] | None = None
    joiner = ""
    position = 0
    text = pattern.strip()
    while position < len(text):
        token = _TOKEN.match(text, position)
        if token is None or token.end() == position:
            raise PatternError(f"cannot read the pattern at {text[position : position + 30]!r}")
        position = token.end()
        if token["open"]:
            if current is not None:
                raise PatternError("nested '[' is not supported")
            current, joiner = [], ""
        elif token["close"]:
            if not current:
                raise PatternError("empty observation '[]'")
            observations.append(current)
            current = None
        elif token["op"]:
            joiner = token["op"]
        else:
            if current is None:
                raise PatternError("a comparison must be inside '[ ]'")
            current.append((joiner, token["path"].lower(), token["value"].replace("\\'", "'").replace("\\\\", "\\")))
    if current is not None or not observations:
        raise PatternError("unbalanced '[ ]'")
    return observations


def _keys_of(pattern: str) -> list[tuple[KeyType, str, str]]:
    """(key type, value, package) for each entry the pattern stands for; [] when it is not about apps."""
    keys: list[tuple[KeyType, str, str]] = []
    for observation in _parse_pattern(pattern):
        operators = {joiner for joiner, _, _ in observation[1:]}
        if operators == {"AND"}:
            paths = {path: value for _, path, value in observation}
            if set(paths) != {"app:id", "app:cert.sha256"} or len(observation) != 2:
                raise PatternError("AND is only supported as app:id = '…' AND app:cert.sha256 = '…'")
            keys.append((KeyType.PACKAGE_AND_CERT, paths["app:cert.sha256"], paths["app:id"]))
            continue
        if operators - {"OR"}:
            raise PatternError("mixing AND and OR inside one observation is not supported")
        for _, path, value in observation:
            kind = _PROPERTIES.get(path)
            if kind is not None:
                keys.append((kind, value, ""))
    return keys


def _category(indicator: Mapping[str, Any], malware: Mapping[str, Any] | None, default: Category | None) -> Category:
    for holder in (indicator, malware or {}):
        if "x_mtsg_category" in holder:
            return parse_category(holder["x_mtsg_category"])
    for malware_type in (malware or {}).get("malware_types", []):
        if isinstance(malware_type, str) and malware_type.lower() in _MALWARE_TYPES:
            return _MALWARE_TYPES[malware_type.lower()]
    if default is None:
        raise InvalidIndicatorError(
            "category",
            "no x_mtsg_category or known malware_types; name a default category for this import"
            " (`mtsg blocklist import --category CATEGORY`)",
        )
    return default


def _objects(document: object) -> list[Mapping[str, Any]]:
    if not isinstance(document, dict) or document.get("type") != "bundle":
        raise FeedFormatError("document", 'expected a STIX bundle: an object with "type": "bundle"')
    objects = document.get("objects")
    if not isinstance(objects, list):
        raise FeedFormatError("document", 'the bundle has no "objects" list')
    for number, item in enumerate(objects, start=1):
        if not isinstance(item, dict) or not isinstance(item.get("type"), str) or not isinstance(item.get("id"), str):
            raise FeedFormatError(f"object {number}", 'every object needs a string "type" and "id"')
    return objects


def _families(objects: list[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Indicator id → the malware object it indicates."""
    malware = {item["id"]: item for item in objects if item["type"] == "malware"}
    indicated: dict[str, Mapping[str, Any]] = {}
    for item in objects:
        if item["type"] == "relationship" and item.get("relationship_type") == "indicates":
            target = malware.get(item.get("target_ref", ""))
            if target is not None:
                indicated[item.get("source_ref", "")] = target
    return indicated


def read_stix(
    document: object, *, default_source: str, default_category: Category | None, stats: ReadStats | None = None
) -> Iterator[Indicator]:
    """Yield the app indicators of a parsed STIX bundle (``json.load`` output)."""
    stats = stats if stats is not None else ReadStats()
    objects = _objects(document)
    families = _families(objects)
    stats.total = len(objects)
    for number, item in enumerate(objects, start=1):
        stats.read = number
        if item["type"] != "indicator":
            continue
        location = f"object {number} ({item['id']})"
        if item.get("pattern_type", "stix") != "stix":
            stats.skip(f"pattern_type {item.get('pattern_type')}")
            continue
        pattern = item.get("pattern")
        if not isinstance(pattern, str):
            raise FeedFormatError(location, "indicator has no pattern")
        try:
            keys = _keys_of(pattern)
        except PatternError as error:
            raise FeedFormatError(location, f"pattern {pattern[:80]!r}: {error}") from None
        if not keys:
            stats.skip("pattern not about apps")
            continue
        malware = families.get(item["id"])
        try:
            category = _category(item, malware, default_category)
            confidence = item.get("confidence", 50)
            for key_type, value, package in keys:
                yield make_indicator(
                    key_type=key_type,
                    value=value,
                    package_name=package,
                    category=category,
                    severity=item.get("x_mtsg_severity", "high"),
                    family=str((malware or {}).get("name", item.get("name", ""))),
                    # An export of another mtsg keeps its attribution.
                    source=str(item.get("x_mtsg_source") or default_source),
                    source_reference=str(item.get("x_mtsg_source_reference") or item["id"]),
                    confidence=confidence,
                    # STIX requires valid_from; the epoch is how an export says "from always".
                    valid_from=timestamp_field(item.get("valid_from"), "valid_from") or None,
                    valid_until=timestamp_field(item.get("valid_until"), "valid_until"),
                    revoked=item.get("revoked") is True,
                )
        except InvalidIndicatorError as error:
            raise FeedFormatError(location, str(error)) from None


def _pattern(indicator: Indicator) -> str:
    value = indicator.value
    if indicator.key_type is KeyType.APK_SHA256:
        return f"[file:hashes.'SHA-256' = '{value}']"
    if indicator.key_type is KeyType.CERT_SHA256:
        return f"[app:cert.sha256 = '{value}']"
    if indicator.key_type is KeyType.CERT_SHA1:
        return f"[app:cert.sha1 = '{value}']"
    if indicator.key_type is KeyType.PACKAGE_NAME:
        return f"[app:id = '{value}']"
    return f"[app:id = '{indicator.package_name}' AND app:cert.sha256 = '{value}']"


def write_stix(indicators: Iterable[Indicator], *, created_at: float) -> dict[str, Any]:
    """A STIX 2.1 bundle of the indicators, a malware object per family and the relationships between them."""
    stamp = format_timestamp(created_at)
    objects: list[dict[str, Any]] = []
    malware_ids: dict[tuple[str, str], str] = {}
    for indicator in indicators:
        indicator_id = f"indicator--{uuid.uuid5(_NAMESPACE, indicator.entry_id)}"
        stix_indicator: dict[str, Any] = {
            "type": "indicator",
            "spec_version": "2.1",
            "id": indicator_id,
            "created": stamp,
            "modified": stamp,
            "pattern": _pattern(indicator),
            "pattern_type": "stix",
            "valid_from": format_timestamp(indicator.valid_from or 0.0),
            "confidence": indicator.confidence,
            "revoked": indicator.revoked,
            "x_mtsg_category": indicator.category.value,
            "x_mtsg_severity": indicator.severity.value,
            "x_mtsg_source": indicator.source,
            "x_mtsg_source_reference": indicator.source_reference,
        }
        if indicator.family:
            stix_indicator["name"] = indicator.family
        if indicator.valid_until is not None:
            stix_indicator["valid_until"] = format_timestamp(indicator.valid_until)
        objects.append(stix_indicator)
        if not indicator.family:
            continue
        family_key = (indicator.family, indicator.category.value)
        malware_id = malware_ids.get(family_key)
        if malware_id is None:
            malware_id = malware_ids[family_key] = f"malware--{uuid.uuid5(_NAMESPACE, '/'.join(family_key))}"
            objects.append(
                {
                    "type": "malware",
                    "spec_version": "2.1",
                    "id": malware_id,
                    "created": stamp,
                    "modified": stamp,
                    "name": indicator.family,
                    "is_family": True,
                    "x_mtsg_category": indicator.category.value,
                }
            )
        objects.append(
            {
                "type": "relationship",
                "spec_version": "2.1",
                "id": f"relationship--{uuid.uuid5(_NAMESPACE, indicator_id + malware_id)}",
                "created": stamp,
                "modified": stamp,
                "relationship_type": "indicates",
                "source_ref": indicator_id,
                "target_ref": malware_id,
            }
        )
    return {"type": "bundle", "id": f"bundle--{uuid.uuid5(_NAMESPACE, stamp)}", "objects": objects}
