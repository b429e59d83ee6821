"""Stopping a waiter works whatever else happens in the same instant."""

from __future__ import annotations

import asyncio

import pytest

from gateway.runtime.wakeup import Wakeup


@pytest.mark.parametrize("turns", range(5))
async def test_a_waiter_cancelled_just_as_it_is_woken_stops(turns: int) -> None:
    """Python 3.11's wait_for swallowed this cancellation, and a dispatcher's stop() then waited for ever."""
    wakeup = Wakeup()
    waiting = asyncio.create_task(Wakeup.wait(wakeup.ticket(), 10.0))
    await asyncio.sleep(0)
    wakeup.notify()
    for _ in range(turns):
        await asyncio.sleep(0)
    if waiting.done():
        return  # it had already returned: nothing left to stop
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_a_waiter_returns_on_notify_and_on_timeout() -> None:
    wakeup = Wakeup()
    ticket = wakeup.ticket()
    waiting = asyncio.create_task(Wakeup.wait(ticket, 10.0))
    await asyncio.sleep(0)
    wakeup.notify()
    await asyncio.wait_for(waiting, 1.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await Wakeup.wait(wakeup.ticket(), 0.05)
    assert loop.time() - started >= 0.04
