"""Reading feed files from disk for the CLI: which format, streaming, and how far along.

The core readers take lines or parsed documents; this module opens the file,
guesses the format from its name and first line when the operator did not say,
and counts the bytes consumed so a long import can report a percentage.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from blocklists.entry import Category, Indicator
from blocklists.formats import FeedFormatError, ReadStats
from blocklists.formats.csv_rows import read_csv
from blocklists.formats.stalkerware import SAMPLE_COLUMNS, read_ioc_yaml, read_samples_csv
from blocklists.formats.stix import read_stix

FORMATS = ("csv", "stix", "stalkerware-ioc", "stalkerware-samples", "bundle")


class FeedFileError(RuntimeError):
    """The file cannot be read as asked; the message says what to do."""


def detect_format(path: Path) -> str:
    """The format a file's name and first line suggest; FeedFileError when neither says."""
    name = path.name.lower()
    if name.endswith((".jsonl", ".bundle")):
        return "bundle"
    if name.endswith((".json", ".stix2", ".stix")):
        return "stix"
    if name.endswith((".yaml", ".yml")):
        return "stalkerware-ioc"
    if name.endswith(".csv"):
        with path.open("rb") as file:
            first = file.readline().decode("utf-8", errors="replace").strip()
        return "stalkerware-samples" if first.startswith(",".join(SAMPLE_COLUMNS[:2])) else "csv"
    raise FeedFileError(f"cannot tell the format of {path.name}; pass --format ({', '.join(FORMATS)})")


@dataclass
class ByteCounter:
    """Lines of a binary file, counting the bytes handed out so far."""

    file: BinaryIO
    consumed: int = 0

    def __iter__(self) -> Iterator[bytes]:
        for line in self.file:
            self.consumed += len(line)
            yield line


def _text_lines(lines: ByteCounter) -> Iterator[str]:
    for number, line in enumerate(lines, start=1):
        try:
            yield line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise FeedFormatError(f"line {number}", "is not UTF-8 text") from None


@dataclass
class FeedRead:
    """An open feed: the indicators to stream and what the read skipped."""

    indicators: Iterator[Indicator]
    counter: ByteCounter | None
    size: int
    stats: ReadStats = field(default_factory=ReadStats)


def ensure_not_empty(path: Path) -> int:
    """The size of ``path``; FeedFileError when it is 0 bytes, which every reader would blame on line 1
    while the cause is usually a failed download or export."""
    size = path.stat().st_size
    if size == 0:
        raise FeedFileError(f"{path.name} is empty (0 bytes): nothing to import")
    return size


def open_feed(path: Path, feed_format: str, *, source: str, default_category: Category | None) -> FeedRead:
    """Open ``path`` for streaming (bundles are handled separately: they are verified first)."""
    size = ensure_not_empty(path)
    if feed_format in ("csv", "stalkerware-samples"):
        counter = ByteCounter(path.open("rb"))
        lines = _text_lines(counter)
        indicators = read_csv(lines, default_source=source) if feed_format == "csv" else read_samples_csv(lines)
        return FeedRead(indicators, counter, size)
    stats = ReadStats()
    text = path.read_text(encoding="utf-8-sig")
    if feed_format == "stalkerware-ioc":
        return FeedRead(read_ioc_yaml(text, stats, file_name=path.name), None, size, stats)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise FeedFormatError(f"line {error.lineno}", f"not valid JSON: {error.msg}") from None
    except RecursionError:
        raise FeedFormatError("the file", "not readable JSON: nested too deeply") from None
    return FeedRead(
        read_stix(document, default_source=source, default_category=default_category, stats=stats), None, size, stats
    )


class ProgressLine:
    """Progress on stderr at most once a second, and once at the end."""

    def __init__(self, what: str, read: FeedRead | None = None) -> None:
        self._what = what
        self._read = read
        self._last = 0.0
        self._started = time.monotonic()

    def __call__(self, count: int) -> None:
        now = time.monotonic()
        if now - self._last < 1.0:
            return
        self._last = now
        print(f"{self._what}: {count:,} entries read{self._share()}, {now - self._started:.1f} s", file=sys.stderr)

    def _share(self) -> str:
        read = self._read
        if read is None:
            return ""
        if read.counter is not None and read.size:
            return f" ({100 * read.counter.consumed / read.size:.0f}% of the file)"
        if read.stats.total:  # a document parsed whole (STIX, YAML): how far through its items
            return f" ({100 * read.stats.read / read.stats.total:.0f}% of the file)"
        return ""

    def merging(self, count: int) -> None:
        """Every entry is read; the registry takes them in one transaction, which can take a while."""
        print(f"{self._what}: all {count:,} entries read; merging them into the registry...", file=sys.stderr)
