"""Background loops that must outlive any one failed round (refreshers, pollers)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from gateway.runtime.wakeup import Wakeup

log = structlog.get_logger(__name__)


async def every(
    interval: float,
    step: Callable[[], Awaitable[object]],
    what: str,
    wakeup: Wakeup | None = None,
    *,
    expected: tuple[type[Exception], ...] = (),
) -> None:
    """Run ``step`` every ``interval`` seconds, or at once when ``wakeup`` is notified, until cancelled;
    a failed round is logged and the next one runs.

    An ``expected`` failure (a store outage, say) is logged in one line; any other with its traceback.
    """
    ticket = wakeup.ticket() if wakeup is not None else None
    while True:
        if ticket is None:
            await asyncio.sleep(interval)
        else:
            await Wakeup.wait(ticket, interval)
        # Taken before the step: a change announced while it runs brings the next round at once.
        ticket = wakeup.ticket() if wakeup is not None else None
        try:
            await step()
        except expected as error:
            log.warning(f"{what} failed; keeping the current one", error=str(error))
        except Exception:  # the loop must outlive any one bad round
            log.exception(f"{what} failed; keeping the current one")


async def cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` (if running) and wait until it has stopped."""
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
