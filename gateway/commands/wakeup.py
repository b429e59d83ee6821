"""In-process wake-up for whoever waits on new commands (the dispatcher, stream subscribers).

Polling the store is the safety net (commands written by another process, such as
``mtsg commands unfreeze``); the wake-up makes a command written by this process go
out at once, which is what keeps verdict-to-delivery in milliseconds.
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
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ticket.wait(), timeout)
