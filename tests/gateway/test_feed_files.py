"""Opening a feed file for import: a file no parser can read is a feed error, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from blocklists.formats import FeedFormatError
from gateway.feed_files import FeedFileError, open_feed


@pytest.mark.parametrize(("name", "feed_format"), [("deep.json", "stix"), ("ioc.yaml", "stalkerware-ioc")])
def test_a_feed_nested_too_deeply_is_a_feed_error(tmp_path: Path, name: str, feed_format: str) -> None:
    path = tmp_path / name
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(FeedFormatError, match="nested too deeply"):
        feed = open_feed(path, feed_format, source="test", default_category=None)
        list(feed.indicators)


@pytest.mark.parametrize("feed_format", ["csv", "stix", "stalkerware-ioc", "stalkerware-samples"])
def test_an_empty_file_is_refused_as_empty_not_blamed_on_line_1(tmp_path: Path, feed_format: str) -> None:
    path = tmp_path / "download.csv"
    path.write_bytes(b"")
    with pytest.raises(FeedFileError, match=r"download.csv is empty \(0 bytes\)"):
        open_feed(path, feed_format, source="test", default_category=None)
