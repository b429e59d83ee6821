"""Log lines fit one pipe write: a deep traceback cannot freeze the gateway behind a slow log reader.

A pipe whose poll says "room" promises 4 KiB.  A longer line blocked the writer (the event loop) until
the reader read, for good if it had stalled, and could be split among the lines of other workers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.observability.logging_setup import MAX_LINE_CHARACTERS, render_bounded_json

_ROOT = Path(__file__).parents[3]

# About 20 KiB as a log line: three fill the pipe but for one page, which the poll calls room.
_FRAME = '  File "/srv/mtsg/gateway/layer{depth}.py", line {depth}, in call\n    await inner()\n'
_TRACEBACK = (
    "Traceback (most recent call last):\n"
    + "".join(_FRAME.format(depth=depth) for depth in range(260))
    + "asyncpg.exceptions.ConnectionDoesNotExistError: connection was closed in the middle of operation"
)


def test_a_short_event_is_rendered_as_it_is() -> None:
    event = {"message": "serving", "port": 50051, "level": "info"}
    assert render_bounded_json(None, "info", dict(event)) == json.dumps(event)


def test_a_deep_traceback_is_cut_in_its_middle_keeping_its_start_and_its_error() -> None:
    event = {"message": "unexpected error", "request_id": "r-1", "exception": _TRACEBACK, "level": "error"}

    line = render_bounded_json(None, "error", event)

    assert len(line) <= MAX_LINE_CHARACTERS < len(json.dumps(event))
    parsed = json.loads(line)
    assert {key: parsed[key] for key in ("message", "request_id", "level")} == {
        "message": "unexpected error",
        "request_id": "r-1",
        "level": "error",
    }
    assert parsed["exception"].startswith("Traceback (most recent call last):\n")
    assert parsed["exception"].endswith("connection was closed in the middle of operation")
    assert " characters cut]... " in parsed["exception"]


def test_long_text_that_escapes_long_in_json_still_fits() -> None:
    """Non-ASCII is written as \\uXXXX: six characters of line for one of text."""
    event = {"message": "x" * 10_000, "detail": "\u4e2d\u6587" * 3_000, "level": "warning"}
    line = render_bounded_json(None, "warning", event)
    assert len(line) <= MAX_LINE_CHARACTERS
    assert set(json.loads(line)) == {"message", "detail", "level"}


def test_an_error_that_escapes_longer_than_the_rest_of_its_traceback_is_kept() -> None:
    """A PostgreSQL that answers in Korean ends an ASCII traceback with text six times as long in JSON.
    The cut, sized for the field's average, left the line too long, and the whole field was given up
    for the last-resort line: the error, the one part an operator needs, was lost."""
    error = (
        "asyncpg.exceptions.QueryCanceledError: "
        + "\uc0ac\uc6a9\uc790 \uc694\uccad\uc5d0 \uc758\ud55c \ucde8\uc18c" * 120
    )
    event = {"message": "unexpected error", "exception": _TRACEBACK + "\n" + error, "level": "error"}

    line = render_bounded_json(None, "error", event)

    assert len(line) <= MAX_LINE_CHARACTERS
    parsed = json.loads(line)
    assert parsed["exception"].startswith("Traceback (most recent call last):\n")
    assert parsed["exception"].endswith(error[-300:])


# Long text of any make-up: a short piece of any characters repeated up to a few thousand times.
_LONG_TEXT = st.builds(lambda piece, times: piece * times, st.text(min_size=1, max_size=40), st.integers(1, 3_000))


@settings(max_examples=300, deadline=None)
@given(st.lists(_LONG_TEXT, min_size=1, max_size=4))
def test_every_line_fits_and_parses_whatever_its_fields_hold(texts: list[str]) -> None:
    event = {"message": texts[0], **{f"field{number}": text for number, text in enumerate(texts[1:])}}
    line = render_bounded_json(None, "error", {**event, "level": "error"})
    assert len(line) <= MAX_LINE_CHARACTERS
    assert json.loads(line)["level"] == "error"


def test_an_event_too_long_outside_its_text_keeps_its_message_and_says_how_long_it_was() -> None:
    event = {"message": "feed rejected", "rows": list(range(5_000)), "level": "error", "timestamp": "2026-11-23"}
    parsed = json.loads(render_bounded_json(None, "error", event))
    assert parsed == {
        "timestamp": "2026-11-23",
        "level": "error",
        "message": "feed rejected",
        "line_characters_cut": len(json.dumps(event)),
    }


def test_long_lines_to_a_stalled_log_reader_do_not_block_the_process() -> None:
    """Before, the fourth 20 KiB traceback blocked the process until the reader read: here, never."""
    child = textwrap.dedent(
        """
        import structlog
        from gateway.observability.logging_setup import configure_logging
        from tests.gateway.observability.test_log_lines import _TRACEBACK
        configure_logging()
        log = structlog.get_logger()
        for number in range(200):
            log.error("unexpected error", number=number, exception=_TRACEBACK)
        print("done", flush=True)
        """
    )
    reader, writer = os.pipe()  # the reader stalls: nobody reads until the child is done
    try:
        finished = subprocess.run(
            [sys.executable, "-c", child], stderr=writer, stdout=subprocess.PIPE, text=True, timeout=30, cwd=_ROOT
        )
        os.close(writer)
        writer = -1
        assert finished.returncode == 0 and finished.stdout == "done\n"
        with os.fdopen(reader, encoding="ascii") as log:
            reader = -1
            lines = log.read().splitlines()
    finally:
        for descriptor in (reader, writer):
            if descriptor >= 0:
                os.close(descriptor)
    assert 10 <= len(lines) < 200  # as many as the pipe held; the rest were dropped, not waited for
    for line in lines:
        assert len(line) <= MAX_LINE_CHARACTERS
        assert json.loads(line)["exception"].endswith("in the middle of operation")
