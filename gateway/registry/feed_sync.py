"""Following remote signed bundles: fetch on a schedule, verify, apply, remember how it went.

Each feed URL is fetched with ``If-None-Match`` so an unchanged feed costs one
304; a new bundle goes through exactly the checks of ``mtsg blocklist import``
(signature, digest, expiry, no rollback) before anything is stored.  A failure
is recorded in the feed's status and retried with exponential backoff and
jitter (never later than the normal interval); the registry keeps what it had.

A feed that keeps failing leaves the registry stale while logins go on being answered, so the last
success is also a metric (``mtsg_feed_last_success_timestamp_seconds``), seeded from the store at
start so that a feed which has not worked for days shows its age after a restart too.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import structlog

from blocklists.bundle import BundleError
from blocklists.formats import FeedFormatError
from gateway.observability.metrics import Metrics
from gateway.registry.importing import import_bundle
from gateway.registry.trusted_keys import TrustedKeyError, load_trusted_keys
from gateway.store import Store, StoreUnavailableError
from gateway.store.records import FeedStatus
from gateway.urls import without_secrets

log = structlog.get_logger(__name__)
MAX_BUNDLE_BYTES = 512 << 20
FIRST_RETRY_SECONDS = 5.0


class FeedFetchError(RuntimeError):
    """The feed could not be fetched; the message is what the operator sees in the status."""


@dataclass
class _FeedState:
    url: str
    shown_as: str  # the URL without the secrets it may carry: for logs, errors, metrics and the audit trail
    etag: str = ""
    failures: int = 0
    next_attempt: float = 0.0
    bundle_version: int | None = None


class FeedSync:
    def __init__(
        self,
        store: Store,
        urls: tuple[str, ...],
        *,
        interval: float,
        timeout: float,
        trusted_keys_dir: Path,
        on_change: Callable[[], Awaitable[object]],
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._store = store
        self._verify = verify
        self._feeds = [_FeedState(url, without_secrets(url)) for url in urls]
        self._interval = interval
        self._timeout = timeout
        self._trusted_keys_dir = trusted_keys_dir
        self._on_change = on_change
        self._last_success = {feed.url: metrics.feed_last_success.labels(feed=feed.shown_as) for feed in self._feeds}
        self._failures = {feed.url: metrics.feed_sync_failures.labels(feed=feed.shown_as) for feed in self._feeds}
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def _fetch(self, client: httpx.AsyncClient, feed: _FeedState) -> bytes | None:
        """The bundle bytes, or None when the server says nothing changed (304).

        The timeout bounds the whole fetch, not only each read: a link that stalls, or a server
        that sends a byte at a time, would otherwise hold this feed, and every feed after it,
        for as long as it likes.
        """
        try:
            async with asyncio.timeout(self._timeout):
                return await self._download(client, feed)
        except TimeoutError:
            raise FeedFetchError(
                f"fetching {feed.shown_as} took longer than {self._timeout:g} s (blocklist.feed_timeout_seconds)"
            ) from None

    async def _download(self, client: httpx.AsyncClient, feed: _FeedState) -> bytes | None:
        headers = {"If-None-Match": feed.etag} if feed.etag else {}
        try:
            async with client.stream("GET", feed.url, headers=headers) as response:
                if response.status_code == 304:
                    return None
                if response.status_code != 200:
                    raise FeedFetchError(f"HTTP {response.status_code} from {feed.shown_as}")
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_BUNDLE_BYTES:
                        raise FeedFetchError(f"the bundle is larger than {MAX_BUNDLE_BYTES >> 20} MiB")
                    chunks.append(chunk)
                feed.etag = response.headers.get("ETag", "")
                return await asyncio.to_thread(b"".join, chunks)  # tens of ms for a large bundle: off the loop
        except httpx.HTTPError as error:
            detail = str(error).replace(feed.url, feed.shown_as)
            raise FeedFetchError(f"cannot fetch {feed.shown_as}: {type(error).__name__}: {detail}") from None

    async def sync_feed(self, client: httpx.AsyncClient, feed: _FeedState) -> None:
        """One attempt: fetch, verify, apply; the outcome goes to the store's feed status either way."""
        attempted_at = self._clock()
        previous_etag = feed.etag
        error = ""
        try:
            body = await self._fetch(client, feed)
            if body is not None:
                lines = await asyncio.to_thread(body.splitlines, True)  # keepends: the digest covers them
                outcome = await import_bundle(
                    self._store,
                    lambda: iter(lines),
                    load_trusted_keys(self._trusted_keys_dir),
                    actor=f"feed {feed.shown_as}",
                    now=attempted_at,
                )
                feed.bundle_version = outcome.manifest.bundle_version
                if outcome.summary is not None:
                    await self._on_change()
                    log.info("feed bundle applied", url=feed.shown_as, bundle_version=feed.bundle_version)
            feed.failures = 0
            feed.next_attempt = attempted_at + self._interval
            self._last_success[feed.url].set(attempted_at)
        except (FeedFetchError, BundleError, FeedFormatError, TrustedKeyError, StoreUnavailableError) as failure:
            error = str(failure)
            feed.etag = previous_etag  # fetch the rejected bundle again next time
            feed.failures += 1
            self._failures[feed.url].inc()
            backoff = min(self._interval, FIRST_RETRY_SECONDS * 2 ** (feed.failures - 1))
            feed.next_attempt = attempted_at + backoff * random.uniform(0.5, 1.0)
            log.warning(
                "feed sync failed", url=feed.shown_as, error=error, retry_in=round(feed.next_attempt - attempted_at, 1)
            )
        await self._store.blocklist.record_feed_attempt(
            FeedStatus(
                url=feed.url,
                last_attempt_at=attempted_at,
                last_success_at=None if error else attempted_at,
                last_error=error,
                etag=feed.etag,
                bundle_version=feed.bundle_version,
            )
        )

    async def load_last_successes(self) -> None:
        """Seed the last-success metric from the store, where every replica records its attempts."""
        stored = {status.url: status.last_success_at for status in await self._store.blocklist.feed_statuses()}
        for feed in self._feeds:
            self._last_success[feed.url].set(stored.get(feed.url) or 0)

    async def sync_due(self, client: httpx.AsyncClient) -> None:
        now = self._clock()
        for feed in self._feeds:
            if feed.next_attempt <= now:
                await self.sync_feed(client, feed)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="feed-sync")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        try:
            await self.load_last_successes()
        except StoreUnavailableError as error:  # the first round's attempt records and reports again
            log.warning("feed status unreadable at start", error=str(error))
        async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=True, verify=self._verify) as client:
            while True:
                try:
                    await self.sync_due(client)
                except Exception:  # the schedule must outlive any one bad attempt
                    log.exception("feed sync round failed")
                await asyncio.sleep(1.0)
