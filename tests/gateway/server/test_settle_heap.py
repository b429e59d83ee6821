"""What `mtsg serve` does to the garbage collector once it serves (the slowest logins' time)."""

from __future__ import annotations

import gc
import weakref

from gateway.server.start import YOUNG_GENERATION_OBJECTS, settle_the_heap


class _Node:
    def __init__(self) -> None:
        self.me = self


def test_the_startup_heap_is_frozen_and_new_cycles_are_still_collected() -> None:
    threshold = gc.get_threshold()
    try:
        settle_the_heap()
        assert gc.get_freeze_count() > 1000  # the modules at least
        assert gc.get_threshold()[0] == YOUNG_GENERATION_OBJECTS
        cycle = _Node()
        gone = weakref.ref(cycle)
        del cycle
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
