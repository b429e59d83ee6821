"""Re-reading a file when it changes on disk, so keys and identities rotate without a restart."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)
Loaded = TypeVar("Loaded")


def _stamp(paths: Sequence[Path]) -> tuple[tuple[int, int, int], ...]:
    stamps = []
    for path in paths:
        status = os.stat(path)
        stamps.append((status.st_mtime_ns, status.st_size, status.st_ino))
    return tuple(stamps)


class WatchedFiles(Generic[Loaded]):
    """The value built from some files, rebuilt when any of them changes (checked at most every ``interval``).

    A change that does not load (a half-written file, a bad key) is logged and the
    previous value stays in force: rotating a secret must never take the gateway down.
    The first load raises, so a gateway never starts on a bad file.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        load: Callable[[], Loaded],
        what: str,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._paths = tuple(paths)
        self._load = load
        self._what = what
        self._interval = interval
        self._clock = clock
        self._stamp = _stamp(self._paths)
        self._value = load()
        self._checked = clock()
        self._missing = False
        self.reloads = 0

    @property
    def value(self) -> Loaded:
        self.refresh()
        return self._value

    @property
    def loaded(self) -> Loaded:
        """The value in force, without looking at the files (for a caller that paces its own refreshes)."""
        return self._value

    def refresh(self) -> bool:
        """Reload if the files changed; True when a new value is in force."""
        now = self._clock()
        if now - self._checked < self._interval:
            return False
        self._checked = now
        try:
            stamp = _stamp(self._paths)
        except OSError as error:
            if not self._missing:  # said once, not at every check until the file is back
                log.error(f"{self._what} cannot be read; the loaded one stays in force", error=str(error))
            self._missing = True
            return False
        self._missing = False
        if stamp == self._stamp:
            return False
        self._stamp = stamp  # a bad change is reported once, not at every check
        try:
            value = self._load()
        except Exception as error:
            log.error(f"{self._what} changed but cannot be loaded; the previous one stays in force", error=str(error))
            return False
        self._value = value
        self.reloads += 1
        log.info(f"{self._what} reloaded", files=[str(path) for path in self._paths])
        return True
