"""The configured remote-control app list, re-read when its file changes.

Gangs move to a new remote-support app when the known ones are flagged; the security team adds it
to ``signals.remote_control_apps_file`` and every gateway takes it within seconds, without a
restart, as blocklist and policy changes are taken.  A changed file that does not load (a typo, a
half-written file) is logged once and the list in force stays: a bad edit must not switch off the
detector.  Replace the file in one step (write a new one and rename it over, as a Kubernetes
ConfigMap update does): a file cut short at an entry's end is still a valid, shorter list.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import structlog

from gateway.policy.knowledge import load_remote_control_catalog
from gateway.registry.refresh import KnowledgeHolder
from gateway.runtime.periodic import cancel, every
from gateway.security.file_watch import WatchedFiles
from signals.remote_control import RemoteControlCatalog

log = structlog.get_logger(__name__)

# How often the file's size, time and inode are looked at: a stat, cheap enough to do every second.
CHECK_SECONDS = 1.0


class RemoteControlListWatch:
    """The list from ``path``, loaded now (a bad file stops the start), then kept in ``holder`` as the file changes."""

    def __init__(self, path: Path, interval: float = CHECK_SECONDS) -> None:
        self._interval = interval
        # Checked whenever asked: ``every`` already paces the checks.
        self._file = WatchedFiles((path,), lambda: load_remote_control_catalog(str(path)), "remote-control app list", 0)
        self._task: asyncio.Task[None] | None = None

    @property
    def catalog(self) -> RemoteControlCatalog:
        """The list in force: the last content of the file that loaded."""
        return self._file.loaded

    async def check(self, holder: KnowledgeHolder) -> bool:
        """Put the file's new list in force if it changed and loads; True when it did."""
        if not self._file.refresh():
            return False
        catalog = self._file.loaded
        holder.current = dataclasses.replace(holder.current, remote_control=catalog)
        log.info("remote-control app list in force", apps=len(catalog.by_package))
        return True

    def start(self, holder: KnowledgeHolder) -> None:
        self._task = asyncio.create_task(
            every(self._interval, lambda: self.check(holder), "remote-control app list check"),
            name="remote-control-list-watch",
        )

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
