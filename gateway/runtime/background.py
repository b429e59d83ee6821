"""Background CPU work that shares the process with the event loop answering logins.

CPython lets one thread run Python at a time, and a thread that wants the GIL back waits for the
holder to give it up: at the latest after the switch interval (5 ms).  The event loop gives the
GIL up at every turn of a login (each wait on the network, on the store, on the commit thread),
so while a worker thread parses a feed or builds a matcher, every one of those turns costs up to
5 ms, and at a few hundred logins a second the loop falls behind by seconds.  Worker threads that
chew through many items therefore hand the GIL over themselves, often.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")
# Beyond this many registry entries, turning rows into indicators or indexing them is milliseconds
# of CPU: it goes to a worker thread, so that a large import does not hold the loop and its logins.
OFF_LOOP_ENTRIES = 2_000
# A short stretch of parsing or indexing between hand-overs.  Handing over four times as often
# held logins no better during a feed apply and made a plain `mtsg blocklist import` much slower.
ITEMS_BETWEEN_YIELDS = 64


def yielding(items: Iterable[Item], every: int = ITEMS_BETWEEN_YIELDS) -> Iterator[Item]:
    """``items``, letting a waiting thread (the event loop) take the GIL every ``every`` items.

    On a thread that runs an event loop it hands nothing over: there it would only let the
    background work in ahead of the logins.
    """
    if asyncio._get_running_loop() is not None:
        yield from items
        return
    for count, item in enumerate(items, 1):
        if count % every == 0:
            time.sleep(0)
        yield item
