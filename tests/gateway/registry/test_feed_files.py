"""Opening a feed file for import: a file no parser can read is a feed error, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blocklists.formats import FeedFormatError
from gateway.registry.feed_files import FeedFileError, ProgressLine, open_feed


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


def test_progress_on_a_document_read_whole_gives_how_far_through_its_items(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    objects = [
        {
            "type": "indicator",
            "id": f"indicator--{n}",
            "pattern": f"[app:id = 'com.app{n}']",
            "x_mtsg_category": "spyware",
        }
        for n in range(4)
    ]
    path = tmp_path / "feed.stix2"
    path.write_text(json.dumps({"type": "bundle", "id": "bundle--1", "objects": objects}))
    read = open_feed(path, "stix", source="test", default_category=None)
    line = ProgressLine("import", read)
    next(read.indicators)
    next(read.indicators)
    line(2)
    assert "import: 2 entries read (50% of the file)" in capsys.readouterr().err
