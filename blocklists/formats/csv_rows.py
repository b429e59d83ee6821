"""mtsg's own CSV format: one indicator per row, a header naming the columns.

Columns (header required; order free; only the first three are required):

    key_type, value, category, severity, package_name, family, source,
    source_reference, confidence, valid_from, valid_until, revoked, revoke_reason

``key_type``: apk_sha256 | cert_sha256 | cert_sha1 | package_name | package_and_cert.
Times are RFC 3339 (``2026-01-31T00:00:00Z``); ``revoked`` is true/false (or 1/0).
Empty cells take the defaults of ``make_indicator``; an empty ``source`` takes the
source the operator named for the whole import.  An unknown column is refused:
a misspelt ``valid_untill`` must not silently mean "valid forever".
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from blocklists.entry import Indicator, InvalidIndicatorError, make_indicator
from blocklists.formats import FeedFormatError, format_timestamp, timestamp_field

COLUMNS = (
    "key_type",
    "value",
    "category",
    "severity",
    "package_name",
    "family",
    "source",
    "source_reference",
    "confidence",
    "valid_from",
    "valid_until",
    "revoked",
    "revoke_reason",
)
REQUIRED_COLUMNS = ("key_type", "value", "category")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}


def _flag(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidIndicatorError("revoked", f"expected true or false, got {text[:20]!r}")


def _confidence(text: str) -> int:
    if not text.strip():
        return 50
    try:
        return int(text.strip())
    except ValueError:
        raise InvalidIndicatorError("confidence", f"expected a whole number from 0 to 100, got {text[:20]!r}") from None


def _row_to_indicator(row: dict[str, str], default_source: str) -> Indicator:
    return make_indicator(
        key_type=row["key_type"],
        value=row["value"],
        category=row["category"],
        severity=row.get("severity") or "high",
        package_name=row.get("package_name", ""),
        family=row.get("family", ""),
        source=row.get("source") or default_source,
        source_reference=row.get("source_reference", ""),
        confidence=_confidence(row.get("confidence", "")),
        valid_from=timestamp_field(row.get("valid_from", "").strip(), "valid_from"),
        valid_until=timestamp_field(row.get("valid_until", "").strip(), "valid_until"),
        revoked=_flag(row.get("revoked", "")),
        revoke_reason=row.get("revoke_reason", ""),
    )


def read_csv(lines: Iterable[str], *, default_source: str) -> Iterator[Indicator]:
    """Yield one indicator per data row; raise FeedFormatError with the line number of the first bad row."""
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as error:
        raise FeedFormatError("line 1", f"not valid CSV: {error}") from None
    if header is None or not any(cell.strip() for cell in header):
        raise FeedFormatError("line 1", f"expected a header row naming the columns ({', '.join(REQUIRED_COLUMNS)}, …)")
    names = [cell.strip().lower() for cell in header]
    unknown = [name for name in names if name not in COLUMNS]
    if unknown:
        noun = "column" if len(unknown) == 1 else "columns"
        raise FeedFormatError("line 1", f"unknown {noun} {', '.join(unknown)}; known: {', '.join(COLUMNS)}")
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        noun = "column" if len(missing) == 1 else "columns"
        raise FeedFormatError("line 1", f"missing required {noun} {', '.join(missing)}")
    if len(set(names)) != len(names):
        raise FeedFormatError("line 1", "a column is named twice")
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise FeedFormatError(f"line {reader.line_num}", f"not valid CSV: {error}") from None
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(names):
            raise FeedFormatError(
                f"line {reader.line_num}", f"expected {len(names)} cells as in the header, got {len(cells)}"
            )
        try:
            yield _row_to_indicator(dict(zip(names, cells, strict=True)), default_source)
        except InvalidIndicatorError as error:
            raise FeedFormatError(f"line {reader.line_num}", str(error)) from None


class _Lines:
    """A write target for csv.writer that hands each row back as a string."""

    def __init__(self) -> None:
        self.last = ""

    def write(self, text: str) -> None:
        self.last = text


def write_csv(indicators: Iterable[Indicator]) -> Iterator[str]:
    """The header and one line per indicator, each ending in CRLF as the csv module writes them."""
    target = _Lines()
    writer = csv.writer(target)
    writer.writerow(COLUMNS)
    yield target.last
    for indicator in indicators:
        writer.writerow(
            (
                indicator.key_type.value,
                indicator.value,
                indicator.category.value,
                indicator.severity.value,
                indicator.package_name,
                indicator.family,
                indicator.source,
                indicator.source_reference,
                indicator.confidence,
                "" if indicator.valid_from is None else format_timestamp(indicator.valid_from),
                "" if indicator.valid_until is None else format_timestamp(indicator.valid_until),
                "true" if indicator.revoked else "false",
                indicator.revoke_reason,
            )
        )
        yield target.last
