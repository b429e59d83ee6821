"""The public stalkerware-indicators format (github.com/AssoEchap/stalkerware-indicators).

``ioc.yaml`` lists stalkerware apps and ``watchware.yaml`` watchware (parental-control style
trackers), each app with ``name``, ``names`` (aliases), ``type``, ``packages``,
``certificates`` (SHA-1 of the signing certificate, upper case), ``websites``,
``distribution`` and ``c2``.  ``samples.csv`` has one APK per
row: ``SHA256,Package Name,Certificate,Version,App``.  Websites and C2 are network
indicators a phone's telemetry does not carry; they are counted, not imported.

Every entry keeps the project's attribution: source ``stalkerware-indicators`` (a file
other than ``ioc.yaml`` under a source of its own, see ``source_of``) and a reference to the
file and the apps it came from.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from blocklists.entry import (
    MAX_TEXT_LENGTH,
    Category,
    EntrySeverity,
    Indicator,
    InvalidIndicatorError,
    KeyType,
    make_indicator,
)
from blocklists.formats import FeedFormatError, ReadStats

SOURCE = "stalkerware-indicators"
PROJECT_URL = "https://github.com/AssoEchap/stalkerware-indicators"
SAMPLE_COLUMNS = ("SHA256", "Package Name", "Certificate", "Version", "App")
# Weakest first: the strongest severity among the apps that list one key wins.
_SEVERITY_ORDER = (EntrySeverity.LOW, EntrySeverity.MEDIUM, EntrySeverity.HIGH, EntrySeverity.CRITICAL)


def _strings(app: dict[str, Any], key: str, location: str) -> list[str]:
    values = app.get(key) or []
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise FeedFormatError(location, f"{key!r} must be a list of strings")
    return values


def source_of(file_name: str) -> str:
    """The source a file of the project is imported under.

    ``ioc.yaml`` is the project's main list and keeps the plain name; any other file of it
    (``watchware.yaml``) is a source of its own, so importing one never rewrites, and never lowers,
    what another file said of the same package or certificate: each keeps its own entry.
    """
    stem = file_name.rsplit("/", 1)[-1].removesuffix(".yaml").removesuffix(".yml")
    return SOURCE if stem == "ioc" else f"{SOURCE}/{stem}"


@dataclass
class _Listed:
    """One package or certificate, with every app of the file that lists it."""

    names: list[str] = field(default_factory=list)
    severity: EntrySeverity = EntrySeverity.LOW
    location: str = ""


def _joined(names: list[str], limit: int) -> str:
    """The names, " / " between them, as many as fit in ``limit`` characters, and how many more."""
    text = ""
    for index, name in enumerate(names):
        more = len(names) - index - 1
        candidate = f"{text} / {name}" if text else name
        tail = f" and {more} more" if more else ""
        if len(candidate) + len(tail) > limit:
            return f"{text} and {len(names) - index} more" if text else name[:limit]
        text = candidate
    return text


def read_ioc_yaml(text: str, stats: ReadStats | None = None, *, file_name: str = "ioc.yaml") -> Iterator[Indicator]:
    """Package-name and certificate indicators of every app in ``file_name`` (``ioc.yaml``, ``watchware.yaml``).

    A package or certificate that several apps of the file list (a rebranded stalkerware, say)
    becomes one indicator naming every one of those apps, at the highest severity among them: the
    file's last app does not silently erase the others.
    """
    stats = stats if stats is not None else ReadStats()
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise FeedFormatError(file_name, f"not valid YAML: {error}") from None
    except RecursionError:  # sequences or mappings nested thousands deep: the composer recurses
        raise FeedFormatError(file_name, "not readable YAML: nested too deeply") from None
    if not isinstance(document, list):
        raise FeedFormatError(file_name, "expected a list of apps at the top level")
    stats.total = len(document)
    listed: dict[tuple[KeyType, str], _Listed] = {}
    for number, app in enumerate(document, start=1):
        stats.read = number
        location = f"app {number}"
        if not isinstance(app, dict) or not isinstance(app.get("name"), str) or not app["name"].strip():
            raise FeedFormatError(location, "every app needs a name")
        name = app["name"].strip()
        location = f"app {number} ({name})"
        # watchware (parental-control style trackers) is listed by the project as less clear-cut.
        severity = EntrySeverity.MEDIUM if str(app.get("type", "")).lower() == "watchware" else EntrySeverity.HIGH
        keys = [(KeyType.PACKAGE_NAME, package) for package in _strings(app, "packages", location)]
        keys += [(KeyType.CERT_SHA1, certificate) for certificate in _strings(app, "certificates", location)]
        for key_type, value in keys:
            entry = listed.setdefault((key_type, value.strip().lower()), _Listed(location=location))
            if name not in entry.names:
                entry.names.append(name)
            entry.severity = max(entry.severity, severity, key=_SEVERITY_ORDER.index)
        network = app.get("c2") or {}
        counted = len(_strings(app, "websites", location)) + len(_strings(app, "distribution", location))
        if isinstance(network, dict):
            counted += sum(len(values) for values in network.values() if isinstance(values, list))
        for _ in range(counted):
            stats.skip("network indicator")
    source = source_of(file_name)
    base = f"{PROJECT_URL} {file_name}#"
    for (key_type, value), entry in listed.items():
        try:
            yield make_indicator(
                key_type=key_type,
                value=value,
                category=Category.STALKERWARE,
                severity=entry.severity,
                family=_joined(entry.names, MAX_TEXT_LENGTH),
                source=source,
                source_reference=base + _joined(entry.names, MAX_TEXT_LENGTH - len(base)),
                confidence=80,
            )
        except InvalidIndicatorError as error:
            raise FeedFormatError(entry.location, str(error)) from None


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
