"""The public stalkerware-indicators format (github.com/AssoEchap/stalkerware-indicators).

``ioc.yaml`` lists apps: ``name``, ``names`` (aliases), ``type`` (stalkerware or
watchware), ``packages``, ``certificates`` (SHA-1 of the signing certificate, upper
case), ``websites``, ``distribution`` and ``c2``.  ``samples.csv`` has one APK per
row: ``SHA256,Package Name,Certificate,Version,App``.  Websites and C2 are network
indicators a phone's telemetry does not carry; they are counted, not imported.

Every entry keeps the project's attribution: source ``stalkerware-indicators`` and
a reference to the file and app it came from.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

import yaml

from blocklists.entry import Category, EntrySeverity, Indicator, InvalidIndicatorError, KeyType, make_indicator
from blocklists.formats import FeedFormatError, ReadStats

SOURCE = "stalkerware-indicators"
PROJECT_URL = "https://github.com/AssoEchap/stalkerware-indicators"
SAMPLE_COLUMNS = ("SHA256", "Package Name", "Certificate", "Version", "App")


def _strings(app: dict[str, Any], key: str, location: str) -> list[str]:
    values = app.get(key) or []
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise FeedFormatError(location, f"{key!r} must be a list of strings")
    return values


def read_ioc_yaml(text: str, stats: ReadStats | None = None) -> Iterator[Indicator]:
    """Package-name and certificate indicators of every app in ``ioc.yaml``."""
    stats = stats if stats is not None else ReadStats()
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise FeedFormatError("ioc.yaml", f"not valid YAML: {error}") from None
    except RecursionError:  # sequences or mappings nested thousands deep: the composer recurses
        raise FeedFormatError("ioc.yaml", "not readable YAML: nested too deeply") from None
    if not isinstance(document, list):
        raise FeedFormatError("ioc.yaml", "expected a list of apps at the top level")
    for number, app in enumerate(document, start=1):
        location = f"app {number}"
        if not isinstance(app, dict) or not isinstance(app.get("name"), str) or not app["name"].strip():
            raise FeedFormatError(location, "every app needs a name")
        name = app["name"].strip()
        location = f"app {number} ({name})"
        # watchware (parental-control style trackers) is listed by the project as less clear-cut.
        severity = EntrySeverity.MEDIUM if str(app.get("type", "")).lower() == "watchware" else EntrySeverity.HIGH
        reference = f"{PROJECT_URL} ioc.yaml#{name}"
        keys = [(KeyType.PACKAGE_NAME, package) for package in _strings(app, "packages", location)]
        keys += [(KeyType.CERT_SHA1, certificate) for certificate in _strings(app, "certificates", location)]
        for key_type, value in keys:
            try:
                yield make_indicator(
                    key_type=key_type,
                    value=value,
                    category=Category.STALKERWARE,
                    severity=severity,
                    family=name,
                    source=SOURCE,
                    source_reference=reference,
                    confidence=80,
                )
            except InvalidIndicatorError as error:
                raise FeedFormatError(location, str(error)) from None
        network = app.get("c2") or {}
        counted = len(_strings(app, "websites", location)) + len(_strings(app, "distribution", location))
        if isinstance(network, dict):
            counted += sum(len(values) for values in network.values() if isinstance(values, list))
        for _ in range(counted):
            stats.skip("network indicator")


def read_samples_csv(lines: Iterable[str]) -> Iterator[Indicator]:
    """APK SHA-256 indicators of ``samples.csv``, named after the app they belong to."""
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
        if header is None or tuple(cell.strip() for cell in header[: len(SAMPLE_COLUMNS)]) != SAMPLE_COLUMNS:
            raise FeedFormatError("line 1", f"expected the header {','.join(SAMPLE_COLUMNS)}")
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            location = f"line {reader.line_num}"
            if len(cells) < len(SAMPLE_COLUMNS):
                raise FeedFormatError(location, f"expected {len(SAMPLE_COLUMNS)} cells, got {len(cells)}")
            sha256, _package, _certificate, version, app = (cell.strip() for cell in cells[: len(SAMPLE_COLUMNS)])
            try:
                yield make_indicator(
                    key_type=KeyType.APK_SHA256,
                    value=sha256,
                    category=Category.STALKERWARE,
                    family=app,
                    source=SOURCE,
                    source_reference=f"{PROJECT_URL} samples.csv ({app} {version})".replace(" )", ")"),
                    confidence=90,
                )
            except InvalidIndicatorError as error:
                raise FeedFormatError(location, str(error)) from None
    except csv.Error as error:
        raise FeedFormatError(f"line {reader.line_num}", f"not valid CSV: {error}") from None
