"""Before forking workers the supervisor waits for the store's threads to end, not only for their answers."""

from __future__ import annotations

import threading
import time

from gateway.server.workers import _await_other_threads


def test_a_thread_that_is_ending_is_waited_for() -> None:
    """aiosqlite answers its close just before its thread returns; the fork check must not see that thread."""
    ending = threading.Thread(target=time.sleep, args=(0.3,))
    ending.start()
    _await_other_threads(5.0)
    assert not ending.is_alive()


def test_a_thread_that_does_not_end_is_waited_for_only_so_long() -> None:
    release = threading.Event()
    stuck = threading.Thread(target=release.wait)
    stuck.start()
    try:
        started = time.monotonic()
        _await_other_threads(0.2)
        assert stuck.is_alive() and time.monotonic() - started < 2.0  # the caller then refuses to fork
    finally:
        release.set()
        stuck.join()
