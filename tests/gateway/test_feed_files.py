"""Opening a feed file for import: a file no parser can read is a feed error, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from blocklists.formats import FeedFormatError
from gateway.feed_files import open_feed


@pytest.mark.parametrize(("name", "feed_format"), [("deep.json", "stix"), ("ioc.yaml", "stalkerware-ioc")])
def test_a_feed_nested_too_deeply_is_a_feed_error(tmp_path: Path, name: str, feed_format: str) -> None:
    path = tmp_path / name
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(FeedFormatError, match="nested too deeply"):
        feed = open_feed(path, feed_format, source="test", default_category=None)
        list(feed.indicators)
