"""Login latency while a serving gateway applies a large signed feed bundle.

``mtsg bench`` measures logins against a registry that stands still.  A bank's registry moves: a
followed feed (``blocklist.feed_urls``) brings a new bundle, and the gateway verifies, parses,
stages and merges it, then rebuilds its matcher, all while it answers logins.  This script serves
a signed bundle of ``--entries`` indicators from a local HTTP server that refuses (503) for the
first ``--delay`` seconds, starts ``mtsg serve`` following it, sends logins of 150 installed apps
at ``--rate`` a second (open loop) and prints their latency in five-second windows, with the
gateway's own log lines that mark the phases.

Usage:  python scripts/bench_feed_apply.py [--entries 200000] [--seconds 45] [--rate 50]
                                            [--store-url postgresql://…]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from blocklists.bundle import digest_entries, encode_entry, header_line, make_manifest, public_key_pem, sign_manifest
from blocklists.entry import make_indicator
from gateway.bench.processes import free_port, tethered_module
from gateway.client import MtsgClient
from gateway.generated.mtsg.v1 import telemetry_pb2

WINDOW_SECONDS = 5
PHASES = ("feed sync failed", "feed bundle applied", "blocklist updated", "blocklist loaded")


def signed_bundle(entries: int) -> tuple[bytes, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    lines = [
        encode_entry(
            make_indicator(
                key_type="apk_sha256",
                value=hashlib.sha256(b"feed entry %d" % number).hexdigest(),
                category="voice_phishing",
                source="bench-feed",
            )
        )
        for number in range(entries)
    ]
    count, digest = digest_entries(lines)
    now = time.time()
    manifest = make_manifest(
        publisher="bench-feed",
        bundle_version=1,
        issued_at=now,
        expires_at=now + 7200,
        entry_count=count,
        entries_sha256=digest,
    )
    return header_line(manifest, [sign_manifest(manifest, key)]) + b"".join(lines), key


def serve_bundle(body: bytes, available_at: float) -> ThreadingHTTPServer:
    class Feed(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if time.time() < available_at:
                self.send_response(503)
                self.end_headers()
                return
            if self.headers.get("If-None-Match") == '"v1"':  # as real feeds do: unchanged costs a 304
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("ETag", '"v1"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Feed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


APPS = [
    telemetry_pb2.InstalledApp(package_name=f"com.bench.app{n}", apk_sha256=hashlib.sha256(b"app %d" % n).hexdigest())
    for n in range(150)
]


def login() -> telemetry_pb2.LoginTelemetry:
    message = telemetry_pb2.LoginTelemetry(
        customer_id=f"cust-{uuid.uuid4().hex[:10]}",
        device_id=f"dev-{uuid.uuid4().hex[:10]}",
        nonce=uuid.uuid4().hex,
        installed_apps=APPS,
    )
    message.collected_at.FromNanoseconds(time.time_ns())
    return message


async def drive(target: str, seconds: float, rate: float) -> list[tuple[float, float]]:
    """(sent at, milliseconds) of every login, sent at ``rate`` a second whatever the answers take."""
    samples: list[tuple[float, float]] = []
    async with MtsgClient(target, timeout=30) as client:

        async def one() -> None:
            sent, started = time.time(), time.perf_counter()
            await client.check_login(login())
            samples.append((sent, (time.perf_counter() - started) * 1000))

        pending = []
        end = time.time() + seconds
        while time.time() < end:
            pending.append(asyncio.create_task(one()))
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*pending)
    return samples


def windows(samples: list[tuple[float, float]]) -> list[str]:
    start = min(sent for sent, _ in samples)
    by_window: dict[int, list[float]] = {}
    for sent, milliseconds in samples:
        by_window.setdefault(int((sent - start) // WINDOW_SECONDS), []).append(milliseconds)
    lines = []
    for window, values in sorted(by_window.items()):
        values.sort()
        p99 = values[max(0, int(len(values) * 0.99) - 1)]
        lines.append(
            f"{time.strftime('%H:%M:%S', time.gmtime(start + window * WINDOW_SECONDS))}"
            f"  {window * WINDOW_SECONDS:3d}-{(window + 1) * WINDOW_SECONDS:3d} s  n={len(values):4d}"
            f"  p50 {values[len(values) // 2]:8.1f}  p99 {p99:8.1f}  max {values[-1]:8.1f} ms"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--delay", type=float, default=12.0, help="seconds before the feed answers 200")
    parser.add_argument("--store-url", default="", help="PostgreSQL URL (default: SQLite in a fresh directory)")
    options = parser.parse_args()

    started = time.time()
    body, key = signed_bundle(options.entries)
    print(f"bundle of {options.entries:,} entries, {len(body) / 1e6:.1f} MB, in {time.time() - started:.1f} s")
    feed = serve_bundle(body, time.time() + options.delay)
    with tempfile.TemporaryDirectory() as directory:
        data = Path(directory) / "data"
        (data / "trusted-keys").mkdir(parents=True)
        (data / "trusted-keys" / "bench-feed.pub").write_bytes(public_key_pem(key.public_key()))
        (Path(directory) / "phone-hash.key").write_text(os.urandom(32).hex() + "\n")
        port = free_port()
        environment = {
            **os.environ,
            "MTSG_BLOCKLIST_FEED_URLS": f"http://127.0.0.1:{feed.server_port}/bundle",
            "MTSG_BLOCKLIST_FEED_INTERVAL_SECONDS": "5",
            "MTSG_STORE_URL": options.store_url,
            "MTSG_PRIVACY_PHONE_HASH_KEY_FILE": str(Path(directory) / "phone-hash.key"),
        }
        log_path = Path(directory) / "serve.log"
        with log_path.open("w") as log:
            arguments = ["serve", "--insecure", "--data-dir", str(data), "--listen", f"127.0.0.1:{port}"]
            command = [*tethered_module("gateway.cli"), *arguments, "--metrics-listen", ""]
            gateway = subprocess.Popen(command, env=environment, stdout=log, stderr=log)
            try:
                time.sleep(3)
                samples = asyncio.run(drive(f"127.0.0.1:{port}", options.seconds, options.rate))
            finally:
                gateway.terminate()
                gateway.wait(timeout=30)
        for line in log_path.read_text().splitlines():
            event = json.loads(line) if line.startswith("{") else {}
            if event.get("message") in PHASES:
                detail = {key: event[key] for key in ("seconds", "changed", "entries") if key in event}
                print(f"{event['timestamp'][11:19]}  {event['message']} {detail or ''}")
    feed.shutdown()
    print("\n".join(windows(samples)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
