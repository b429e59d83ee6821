"""Feed sync against a real HTTP server: ETags, verification before apply, failures recorded, backoff."""

from __future__ import annotations

import asyncio
import hashlib
import re
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from blocklists.bundle import digest_entries, encode_entry, header_line, make_manifest, public_key_pem, sign_manifest
from blocklists.entry import make_indicator
from gateway.observability.metrics import Metrics
from gateway.policy.knowledge import load_knowledge
from gateway.registry.feed_sync import FIRST_RETRY_SECONDS, FeedSync
from gateway.registry.importing import import_bundle
from gateway.registry.refresh import BlocklistRefresher, KnowledgeHolder
from gateway.registry.trusted_keys import load_trusted_keys
from gateway.security.tls_client import ClientTLSError
from gateway.server.start import RunningGateway, start_gateway
from gateway.store import Store, open_store
from gateway.store.records import FeedStatus
from tests.certificates import TestAuthority
from tests.helpers import gateway_config

KEY = Ed25519PrivateKey.generate()
APK = hashlib.sha256(b"feed apk").hexdigest()


def bundle(version: int, category: str = "voice_phishing") -> bytes:
    lines = [encode_entry(make_indicator(key_type="apk_sha256", value=APK, category=category, source="feed"))]
    count, sha = digest_entries(lines)
    now = time.time()
    manifest = make_manifest(
        publisher="feed",
        bundle_version=version,
        issued_at=now,
        expires_at=now + 3600,
        entry_count=count,
        entries_sha256=sha,
    )
    return header_line(manifest, [sign_manifest(manifest, KEY)]) + b"".join(lines)


class FeedServer:
    """Serves ``body`` with an ETag; ``status`` overrides the answer; records what it was asked.

    ``drip_seconds`` set, the body leaves a byte at a time, that long apart: a stalled link or
    a hostile server that never lets a read time out.
    """

    def __init__(self) -> None:
        self.body = b""
        self.status = 200
        self.drip_seconds = 0.0
        self.requests: list[dict[str, str]] = []
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                feed.requests.append({**self.headers, "path": self.path})
                etag = '"' + hashlib.sha256(feed.body).hexdigest()[:16] + '"'
                if feed.status != 200:
                    self.send_response(feed.status)
                    self.end_headers()
                elif self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                else:
                    self.send_response(200)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", str(len(feed.body)))
                    self.end_headers()
                    if not feed.drip_seconds:
                        self.wfile.write(feed.body)
                        return
                    for index in range(len(feed.body)):
                        self.wfile.write(feed.body[index : index + 1])
                        self.wfile.flush()
                        time.sleep(feed.drip_seconds)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/feed.bundle"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    yield server
    server.close()


async def test_feed_sync_applies_verified_bundles_and_records_failures(feed_server: FeedServer, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "feed.pub").write_bytes(public_key_pem(KEY.public_key()))
    store = await open_store("", tmp_path)
    holder = KnowledgeHolder(load_knowledge())
    refresher = BlocklistRefresher(store, holder, 0.1, 1000)
    clock = [1000.0]
    metrics = Metrics.create()
    sync = FeedSync(
        store,
        (feed_server.url,),
        interval=60,
        timeout=5,
        trusted_keys_dir=keys,
        on_change=refresher.refresh,
        metrics=metrics,
        clock=lambda: clock[0],
    )
    labels = {"feed": feed_server.url}

    def figures() -> tuple[float | None, float | None]:
        return (
            metrics.registry.get_sample_value("mtsg_feed_last_success_timestamp_seconds", labels),
            metrics.registry.get_sample_value("mtsg_feed_sync_failures_total", labels),
        )

    try:
        async with httpx.AsyncClient(timeout=5) as client:
            feed_server.body = bundle(1)
            await sync.sync_due(client)
            assert holder.current.blocklist.version == 1  # applied and swapped in
            (status,) = await store.blocklist.feed_statuses()
            assert (status.last_error, status.bundle_version, status.last_success_at) == ("", 1, 1000.0)

            clock[0] += 61
            await sync.sync_due(client)
            assert feed_server.requests[-1].get("If-None-Match")  # asked with the ETag, answered 304
            assert await store.blocklist.version() == 1

            feed_server.body = bundle(2, "spyware").replace(b"spyware", b"banker_trojan")  # altered in transit
            clock[0] += 61
            await sync.sync_due(client)
            (status,) = await store.blocklist.feed_statuses()
            assert "altered" in status.last_error and status.last_success_at == 1061.0
            assert figures() == (1061.0, 1.0)  # the 304 was a success, the altered bundle a failure
            assert await store.blocklist.version() == 1

            asked = len(feed_server.requests)
            clock[0] += 1  # still backing off: no request
            await sync.sync_due(client)
            assert len(feed_server.requests) == asked

            feed_server.status = 503
            clock[0] += 6
            await sync.sync_due(client)
            (status,) = await store.blocklist.feed_statuses()
            assert "HTTP 503" in status.last_error
            assert figures() == (1061.0, 2.0)

            feed_server.status, feed_server.body = 200, bundle(3, "spyware")
            clock[0] += 60
            await sync.sync_due(client)
            (status,) = await store.blocklist.feed_statuses()
            assert (status.last_error, status.bundle_version) == ("", 3)
            assert figures() == (clock[0], 2.0)
            (entry,) = [entry async for entry in store.blocklist.iter_entries(False)]
            assert entry.indicator.category.value == "spyware" and entry.created_by == f"feed {feed_server.url}"
    finally:
        await store.close()


async def _nothing_changed() -> None:
    """This test applies no bundle."""


async def test_a_restarted_gateway_shows_each_feeds_last_success_from_the_store(tmp_path: Path) -> None:
    store = await open_store("", tmp_path)
    working, broken = "https://feeds.example/kisa.bundle", "https://feeds.example/other.bundle"
    try:
        await store.blocklist.record_feed_attempt(FeedStatus(working, 5000.0, 4000.0, "HTTP 503", "", 7))
        await store.blocklist.record_feed_attempt(FeedStatus(broken, 5000.0, None, "HTTP 404", "", None))
        metrics = Metrics.create()
        sync = FeedSync(
            store,
            (working, broken, "https://feeds.example/new.bundle"),
            interval=60,
            timeout=5,
            trusted_keys_dir=tmp_path,
            on_change=_nothing_changed,
            metrics=metrics,
        )
        await sync.load_last_successes()
        seeded = [
            metrics.registry.get_sample_value("mtsg_feed_last_success_timestamp_seconds", {"feed": url})
            for url in (working, broken, "https://feeds.example/new.bundle")
        ]
        assert seeded == [4000.0, 0.0, 0.0]  # never worked reads as 0, so its age alerts at once
    finally:
        await store.close()


async def test_the_running_gateway_follows_its_feed(feed_server: FeedServer, tmp_path: Path) -> None:
    from gateway.client import MtsgClient
    from gateway.generated.mtsg.v1 import common_pb2
    from tests.helpers import again, app, telemetry

    feed_server.body = bundle(1)
    data = tmp_path / "data"
    (data / "trusted-keys").mkdir(parents=True)
    (data / "trusted-keys" / "feed.pub").write_bytes(public_key_pem(KEY.public_key()))
    config = gateway_config(tmp_path, blocklist__feed_urls=feed_server.url)
    running = await start_gateway(config)
    try:
        async with MtsgClient(running.target) as client:
            login = telemetry(installed_apps=[app("com.x.y", apk_sha256=APK)])
            deadline = time.monotonic() + 10
            while (await client.check_login(again(login))).action != common_pb2.ACTION_FREEZE:
                assert time.monotonic() < deadline, "the feed's bundle never took effect"
                await asyncio.sleep(0.1)
    finally:
        await running.stop(grace=1.0)


async def test_a_feeds_token_is_sent_to_the_feed_and_shown_nowhere(feed_server: FeedServer, tmp_path: Path) -> None:
    """Logs, the feed's status, the audit trail and /metrics name the feed without its credentials or token."""
    import httpx
    import structlog.testing

    from gateway.client import MtsgClient
    from gateway.generated.mtsg.v1 import blocklist_service_pb2

    secret = "S3CRET-feed-token"
    url = feed_server.url.replace("http://", f"http://reader:{secret}@") + f"?token={secret}"
    data = tmp_path / "data"
    (data / "trusted-keys").mkdir(parents=True)
    (data / "trusted-keys" / "feed.pub").write_bytes(public_key_pem(KEY.public_key()))
    feed_server.status = 503
    config = gateway_config(tmp_path, metrics=True, blocklist__feed_urls=url)
    with structlog.testing.capture_logs() as logs:
        running = await start_gateway(config)
        try:
            await eventually_status(running, "HTTP 503")
            feed_server.status, feed_server.body = 200, bundle(1)
            await asyncio.sleep(FIRST_RETRY_SECONDS + 1)  # the retry after the 503
            async with MtsgClient(running.target) as client:
                status = await client.blocklist.GetStatus(blocklist_service_pb2.GetStatusRequest(), timeout=10)
            async with httpx.AsyncClient() as http:
                metrics = (await http.get(f"http://127.0.0.1:{running.metrics_port}/metrics")).text
            audit = await running.store.blocklist.audit_list(10)
        finally:
            await running.stop(grace=1.0)
    assert status.version == "1" and status.feeds[0].url == feed_server.url
    assert feed_server.requests[-1]["path"].endswith(f"?token={secret}")  # the feed itself got the token
    shown = [str(logs), str(status), metrics, " ".join(f"{record.actor} {record.detail}" for record in audit)]
    assert [text for text in shown if secret in text] == []
    assert any(record.actor == f"feed {feed_server.url}" for record in audit)


async def eventually_status(running: RunningGateway, error: str) -> None:
    deadline = time.monotonic() + 10
    while not any(error in status.last_error for status in await running.store.blocklist.feed_statuses()):
        assert time.monotonic() < deadline, f"no feed status with {error!r}"
        await asyncio.sleep(0.1)


async def test_gateways_racing_to_apply_one_bundle_all_succeed(store: Store, tmp_path: Path) -> None:
    """Every replica (and every worker) follows the same feed: the ones that lose the race to apply a new
    version have nothing left to do, which is no failure to record, count or retry."""
    lines = bundle(1).splitlines(keepends=True)
    (tmp_path / "feed.pub").write_bytes(public_key_pem(KEY.public_key()))
    trusted = load_trusted_keys(tmp_path)
    outcomes = await asyncio.gather(
        *(import_bundle(store, lambda: iter(lines), trusted, actor=f"replica {n}", now=time.time()) for n in range(3))
    )
    applied = [outcome for outcome in outcomes if outcome.summary is not None]
    assert len(applied) == 1 and applied[0].summary is not None and applied[0].summary.added == 1
    assert await store.blocklist.version() == 1


async def test_a_feed_that_drips_is_cut_at_the_fetch_timeout(feed_server: FeedServer, tmp_path: Path) -> None:
    """feed_timeout_seconds bounds the whole fetch: a byte every 0.1 s never trips a per-read timeout."""
    feed_server.body = bundle(1)
    feed_server.drip_seconds = 0.1
    store = await open_store("", tmp_path)
    sync = FeedSync(
        store,
        (feed_server.url,),
        interval=60,
        timeout=1.0,
        trusted_keys_dir=tmp_path,
        on_change=_nothing_changed,
        metrics=Metrics.create(),
    )
    try:
        async with httpx.AsyncClient(timeout=1.0) as client:
            started = time.monotonic()
            await sync.sync_due(client)
            assert time.monotonic() - started < 3.0
        (status,) = await store.blocklist.feed_statuses()
        assert "took longer than 1 s" in status.last_error and "blocklist.feed_timeout_seconds" in status.last_error
        assert await store.blocklist.version() == 0
    finally:
        feed_server.drip_seconds = 0.0  # let the server's thread finish its answer at once
        await store.close()


@pytest.mark.parametrize("trusts_the_bank_ca", [True, False])
async def test_a_feed_on_the_banks_own_pki_is_followed_with_its_ca(
    feed_server: FeedServer, tmp_path: Path, trusts_the_bank_ca: bool
) -> None:
    authority = TestAuthority(tmp_path / "pki", name="bank internal CA")
    served = authority.server("feeds")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(served.cert, served.key)
    feed_server.server.socket = context.wrap_socket(feed_server.server.socket, server_side=True)
    feed_server.body = bundle(1)
    data = tmp_path / "data"
    (data / "trusted-keys").mkdir(parents=True)
    (data / "trusted-keys" / "feed.pub").write_bytes(public_key_pem(KEY.public_key()))
    url = feed_server.url.replace("http://127.0.0.1", "https://localhost")
    ca_file = str(authority.cert) if trusts_the_bank_ca else ""  # empty: the public CAs
    running = await start_gateway(gateway_config(tmp_path, blocklist__feed_urls=url, blocklist__feed_ca_file=ca_file))
    try:
        if trusts_the_bank_ca:
            deadline = time.monotonic() + 10
            while await running.store.blocklist.version() != 1:
                assert time.monotonic() < deadline, await running.store.blocklist.feed_statuses()
                await asyncio.sleep(0.1)
        else:  # the public CAs do not vouch for the bank's feed server
            await eventually_status(running, "CERTIFICATE_VERIFY_FAILED")
            assert await running.store.blocklist.version() == 0
    finally:
        await running.stop(grace=1.0)


async def test_an_unusable_feed_ca_file_stops_the_start_naming_it(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    config = gateway_config(
        tmp_path, blocklist__feed_urls="https://feeds.bank.internal/x.bundle", blocklist__feed_ca_file=str(garbage)
    )
    with pytest.raises(ClientTLSError, match=re.escape(f"blocklist.feed_ca_file {garbage}: not a readable PEM CA")):
        running = await start_gateway(config)
        await running.stop(grace=1.0)
