"""In-process wake-up for whoever waits on a change: the dispatcher and stream subscribers (new
commands), the blocklist and policy refreshers (a new version).

Polling the store is the safety net (a change made by another process, such as
``mtsg commands unfreeze``); the wake-up makes a change go out at once: a command
written by this process, or one announced by another replica (PostgreSQL NOTIFY).
That is what keeps verdict-to-delivery in milliseconds and a blocklist change live
everywhere well within a second.
"""

from __future__ import annotations

import asyncio
import contextlib


class Wakeup:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def ticket(self) -> asyncio.Event:
        """Take this before looking at the store, then ``wait`` on it: a notify in between is not missed."""
        return self._event

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    @staticmethod
    async def wait(ticket: asyncio.Event, timeout: float) -> None:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that arrives
        # just as the event is set, so a dispatcher being stopped while a command was written kept
        # running and its stop() waited for ever (seen as a hung test teardown).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await ticket.wait()
