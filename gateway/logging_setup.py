"""Structured JSON logs (structlog), one object per line on stderr.

Context bound per call (request id, method) is merged into every line, so one
login can be followed across modules.  Telemetry itself is never logged.
"""

from __future__ import annotations

import logging
import sys

import structlog


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
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        # One write per line: the workers of `mtsg serve --workers` share stderr, and print()'s
        # separate write of the newline let their lines run into each other.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def _tag_worker(index: int) -> structlog.typing.Processor:
    def tag(logger: object, method: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
        event.setdefault("worker", index)
        return event

    return tag
