"""One writer at a time on a SQLite file, across this process's coroutines and across processes.

SQLite serialises writers itself, but a writer that finds the file locked by another
process polls: its busy handler sleeps 1, 2, 5 … up to 100 ms between tries, while the
process holding the lock takes it again and again.  With ``mtsg serve --workers`` that
starved one worker of the lock until its logins ran into the store timeout.  So every
writer first takes an exclusive ``flock`` on a file beside the database: a waiter is
woken by the kernel the moment the lock is free instead of sleeping on.  SQLite's own
locking stays underneath for any program that does not know about this file.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path
from types import TracebackType


def lock_file_path(database: Path) -> Path:
    return database.with_name(database.name + ".writer")


class WriteLock:
    """An asyncio lock for this process's coroutines, then the lock file for the other processes."""

    def __init__(self, database: Path) -> None:
        self._local = asyncio.Lock()
        self._descriptor = os.open(lock_file_path(database), os.O_RDWR | os.O_CREAT, 0o600)

    async def acquire(self) -> None:
        await self._local.acquire()
        try:
            fcntl.flock(self._descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass  # another process writes: wait for it on a thread, not on the event loop
        except BaseException:
            self._local.release()
            raise
        waiting = asyncio.ensure_future(asyncio.to_thread(fcntl.flock, self._descriptor, fcntl.LOCK_EX))
        try:
            await asyncio.shield(waiting)
        except asyncio.CancelledError:
            # The thread still waits for the file; this process's writers wait for it to give it back.
            waiting.add_done_callback(self._abandon)
            raise
        except BaseException:
            self._local.release()
            raise

    def _abandon(self, waiting: asyncio.Future[None]) -> None:
        try:
            if not waiting.cancelled() and waiting.exception() is None:
                fcntl.flock(self._descriptor, fcntl.LOCK_UN)
        finally:
            self._local.release()

    def release(self) -> None:
        try:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)
        finally:
            self._local.release()

    def locked(self) -> bool:
        return self._local.locked()

    async def wait_for_local_writers(self) -> None:
        """Return once no coroutine of this process holds the lock (other processes are not waited for)."""
        async with self._local:
            pass

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()

    def close(self) -> None:
        os.close(self._descriptor)
