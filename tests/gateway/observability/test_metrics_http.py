"""The /metrics port closes silent connections and serves a bounded number at once.

Before, each connection held a thread of the gateway's process for as long as its peer liked.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from gateway.observability.metrics_http import MAX_CONNECTIONS, serve_metrics

IDLE = 0.5


@pytest.fixture
def port() -> Iterator[int]:
    registry = CollectorRegistry()
    Counter("mtsg_probe", "a metric to find in the scrape", registry=registry).inc()
    server, thread = serve_metrics("127.0.0.1", 0, registry, idle_seconds=IDLE)
    yield server.server_port
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _closed_within(connection: socket.socket, seconds: float) -> bool:
    connection.settimeout(seconds)
    try:
        return connection.recv(1) == b""
    except TimeoutError:
        return False


def test_a_scrape_is_answered(port: int) -> None:
    assert "mtsg_probe_total 1.0" in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text


def test_a_silent_connection_is_closed_after_the_idle_time(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as silent:
        started = time.monotonic()
        assert _closed_within(silent, 5.0)
        assert IDLE * 0.8 < time.monotonic() - started < IDLE + 2.0


def test_connections_past_the_bound_are_closed_at_once_and_hold_no_thread(port: int) -> None:
    threads_before = threading.active_count()
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)  # let the server accept them all
        extra = [socket.create_connection(("127.0.0.1", port)) for _ in range(3 * MAX_CONNECTIONS)]
        try:
            assert all(_closed_within(connection, IDLE / 2) for connection in extra)
            assert threading.active_count() - threads_before <= MAX_CONNECTIONS
        finally:
            for connection in extra:
                connection.close()
        assert all(_closed_within(connection, 5.0) for connection in held)  # the idle time frees the places
    finally:
        for connection in held:
            connection.close()
    assert "mtsg_probe_total" in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
