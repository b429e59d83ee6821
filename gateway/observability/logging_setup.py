"""Structured JSON logs (structlog), one object per line on stderr.

Context bound per call (request id, method) is merged into every line, so one
login can be followed across modules.  Telemetry itself is never logged.
A line that cannot be written is dropped and counted (``mtsg_log_lines_dropped_total``).
No line is longer than 4 KiB: a longer field (a deep traceback) is cut in its middle.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import select
import sys
from collections.abc import Callable
from typing import Any, ClassVar, TextIO

import structlog

# With its newline, a line is one write of at most PIPE_BUF (4096) bytes: a pipe with room takes it
# whole without blocking, and the lines of the workers sharing one pipe cannot run into each other.
MAX_LINE_CHARACTERS = 4095
# Room left for the marker that says how much of a field was cut, and for its JSON escapes.
_MARKER_ROOM = 64
# What a field cut to make room for the others keeps.
_KEPT_AT_LEAST = 200
# Characters more a field gives up when a cut left its line too long: a marker's count may grow a digit.
_CUT_AGAIN_MARGIN = 8


class LossTolerantStream:
    """stderr as the log's destination, where a line that cannot be written now is dropped, not waited for.

    Whatever reads the log (a pipe to a shipper, journald, a file on a disk that can fill) may go
    away or stall while the gateway runs.  A write raising then would fail the login that logged,
    and every login after it: with the reader of ``mtsg serve | shipper`` gone, every CheckLogin
    answered UNKNOWN (BrokenPipeError).  A write blocking would stop the event loop: with a reader
    that stopped reading, the gateway answered nothing once the pipe's 64 KiB had filled (about 280
    logins).  So a line goes out only when the descriptor has room (a zero-timeout poll; a pipe with
    room takes up to 4 KiB at once without blocking), and is otherwise counted as dropped.  The
    decisions are in the store either way.
    """

    # For the whole process: every gateway in it writes to the same stderr.
    dropped_lines: ClassVar[int] = 0

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._has_room = _room_probe(stream)

    def write(self, text: str) -> int:
        if not self._has_room():
            LossTolerantStream.dropped_lines += 1
            return 0
        try:
            return self._stream.write(text)
        except OSError:
            LossTolerantStream.dropped_lines += 1
            return 0

    def flush(self) -> None:
        # A failure here was counted by write, or its line goes out with the next flush that succeeds.
        with contextlib.suppress(OSError):
            self._stream.flush()


def _room_probe(stream: TextIO) -> Callable[[], bool]:
    """A check that ``stream``'s descriptor takes a write now; an error or hang-up counts (the write reports it)."""
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return lambda: True  # not a descriptor (a test's capture): nothing can block
    probe = select.poll()
    probe.register(descriptor, select.POLLOUT)
    return lambda: bool(probe.poll(0))


def configure_logging(level: str = "info", *, worker: int | None = None) -> None:
    """JSON lines at ``level``; a worker of ``mtsg serve --workers`` tags each of its lines with its index."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *([_tag_worker(worker)] if worker is not None else []),
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("message"),
            render_bounded_json,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        # One write per line: the workers of `mtsg serve --workers` share stderr, and print()'s
        # separate write of the newline let their lines run into each other.  WriteLogger calls only
        # write and flush, which is all LossTolerantStream has of TextIO.
        logger_factory=structlog.WriteLoggerFactory(file=LossTolerantStream(sys.stderr)),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def render_bounded_json(logger: object, method: str, event: structlog.typing.EventDict) -> str:
    """The event as one JSON line of at most ``MAX_LINE_CHARACTERS`` (ASCII: non-ASCII is escaped).

    A longer line would block on a pipe whose reader is slow, even when the poll said it had room,
    and could be interleaved with another worker's line.  So the longest text fields are cut in their
    middle, keeping more of the end (a traceback's innermost frames and its error); an event whose
    length is not in its text is reduced to its message, level, time and how long it was.
    """
    line = _to_json(event)
    if len(line) <= MAX_LINE_CHARACTERS:
        return line
    shortened = dict(event)
    longest_first = sorted(
        (key for key, value in event.items() if isinstance(value, str)),
        key=lambda key: len(_to_json(event[key])),
        reverse=True,
    )
    for name in longest_first:
        text = shortened[name]
        rendered = len(_to_json(text))
        excess = len(line) - MAX_LINE_CHARACTERS
        keep = max(_KEPT_AT_LEAST, len(text) * (rendered - excess - _MARKER_ROOM) // rendered)
        if keep >= len(text):
            break  # the fields left are too short to make room
        while True:
            cut = shortened[name] = _cut_middle(text, keep)
            line = _to_json(shortened)
            if len(line) <= MAX_LINE_CHARACTERS:
                return line
            if keep == _KEPT_AT_LEAST:
                break  # on to the next field
            # The kept ends escape longer than the field's average (ASCII, then Korean): keep less, by
            # the excess at the kept part's own rate of line per character, and a little more each time.
            per_character = len(_to_json(cut)) / len(cut)
            fewer = int((len(line) - MAX_LINE_CHARACTERS) / per_character) + _CUT_AGAIN_MARGIN
            keep = max(_KEPT_AT_LEAST, keep - fewer)
    kept = {key: event[key] for key in ("timestamp", "level", "worker") if key in event}
    message = str(event.get("message", ""))[:300]  # 300 fit even as JSON escapes of 12 characters each
    return _to_json({**kept, "message": message, "line_characters_cut": len(_to_json(event))})


def _cut_middle(text: str, keep: int) -> str:
    head = keep // 3
    return f"{text[:head]} ...[{len(text) - keep} characters cut]... {text[len(text) - (keep - head) :]}"


def _to_json(value: Any) -> str:
    return json.dumps(value, default=repr)


def _tag_worker(index: int) -> structlog.typing.Processor:
    def tag(logger: object, method: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
        event.setdefault("worker", index)
        return event

    return tag
