"""The /metrics endpoint: prometheus_client's WSGI app on a server that cannot be made to hoard threads.

prometheus_client's own server starts a thread per connection and never times one out, so
anyone who can reach the port could park connections there, each holding a thread of the
gateway's process for good; past the process's task limit, the gateway itself could start
no thread (a SQLite reader, an executor job).  Here an idle connection is closed after
``IDLE_SECONDS`` and at most ``MAX_CONNECTIONS`` are served at once; one more is closed at
accept.  A Prometheus scrape takes milliseconds and comes every 15 s or so, far from both.
"""

from __future__ import annotations

import socket
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

IDLE_SECONDS = 10.0
MAX_CONNECTIONS = 32


class _ScrapeHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: a scrape every few seconds would flood the gateway's log."""


class _BoundedServer(ThreadingWSGIServer):
    """A thread per connection, but no more than ``MAX_CONNECTIONS`` of them."""

    # socketserver's default of 5 left the kernel dropping the handshakes of any more connections
    # arriving together, to be retried by their clients seconds later: scrapes waited behind them.
    request_queue_size = 128

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._places = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._places.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._places.release()  # no thread started to give the place back
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._places.release()


def serve_metrics(
    host: str, port: int, registry: CollectorRegistry, idle_seconds: float = IDLE_SECONDS
) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``registry`` on ``host:port`` (port 0: any free one) from a daemon thread; OSError if it cannot bind."""
    family = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)[0][0]

    class _OnThisFamily(_BoundedServer):
        address_family = family  # an IPv6 host needs an IPv6 socket

    class _Handler(_ScrapeHandler):
        timeout = idle_seconds  # socketserver sets it on the connection: a silent one ends there

    server: WSGIServer = make_server(host, port, make_wsgi_app(registry), _OnThisFamily, handler_class=_Handler)
    thread = threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    return server, thread
