"""How the gateway's gRPC servers hold their connections: message sizes, flow control, pings, age.

Each option here answers something that happened to a gateway under test (the comments say what),
so they live together, apart from the server's assembly in ``gateway.server.start``.
"""

from __future__ import annotations

from gateway.config import ServerConfig

GrpcOption = tuple[str, int]


def gateway_options(server: ServerConfig, reuse_port: bool) -> list[GrpcOption]:
    """Options of the main gRPC server: every service but the plain-text health port."""
    return [
        ("grpc.max_receive_message_length", server.max_message_bytes),
        ("grpc.max_send_message_length", server.max_message_bytes),
        _port_sharing(reuse_port),
        *_connection_age(server),
        *_keepalive(server),
        *_flow_control(server.flow_control_window_bytes),
    ]


def health_options(reuse_port: bool) -> list[GrpcOption]:
    """Options of the plain-text health port (``server.health_listen``)."""
    return [
        _port_sharing(reuse_port),
        ("grpc.max_receive_message_length", _HEALTH_MESSAGE_BYTES),
        *_flow_control(_HEALTH_WINDOW_BYTES),
    ]


def _port_sharing(reuse_port: bool) -> GrpcOption:
    """grpc turns SO_REUSEPORT on by default: a second gateway started by mistake on the same port
    would silently share the traffic.  Only the workers of one supervisor share a port."""
    return ("grpc.so_reuseport", 1 if reuse_port else 0)


def _connection_age(server: ServerConfig) -> list[GrpcOption]:
    """gRPC options that make clients reconnect now and then, so new replicas get their share of the load."""
    if not server.max_connection_age_seconds:
        return []
    return [
        ("grpc.max_connection_age_ms", max(1, round(server.max_connection_age_seconds * 1000))),
        ("grpc.max_connection_age_grace_ms", round(server.max_call_seconds * 1000)),
    ]


# The longest an unanswered keepalive ping is waited for.
_KEEPALIVE_TIMEOUT_SECONDS = 20.0


def _keepalive(server: ServerConfig) -> list[GrpcOption]:
    """gRPC options that ping a silent peer while it has a call open, and drop it if it does not answer."""
    if not server.keepalive_seconds:
        return []
    interval_ms = max(1, round(server.keepalive_seconds * 1000))
    timeout_ms = max(1, round(min(server.keepalive_seconds, _KEEPALIVE_TIMEOUT_SECONDS) * 1000))
    return [
        ("grpc.keepalive_time_ms", interval_ms),
        ("grpc.keepalive_timeout_ms", timeout_ms),
        # What grpc 1.85 enforces is the ping's own timeout: with keepalive_timeout_ms alone, a peer
        # that stopped answering kept its connection for over 40 s of 0.5 s pings.
        ("grpc.http2.ping_timeout_ms", timeout_ms),
        # A consumer may ping as often (twice as often, so that jitter never counts against it) to
        # find out a gateway that vanished: grpc's default refuses pings more often than every
        # 5 minutes on a connection that sends no data, an idle stream, and cut such a consumer off
        # with "Too many pings".
        ("grpc.http2.min_ping_interval_without_data_ms", interval_ms // 2),
    ]


def _flow_control(window_bytes: int) -> list[GrpcOption]:
    """A fixed window instead of grpc's bandwidth-delay probing, which let the windows grow by
    megabytes per call: a thousand unauthenticated 4 MB calls, refused before their bodies were
    read, still had the gateway hold 1.7 GB (figures for fixed windows in docs/SECURITY.md)."""
    return [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", window_bytes)]


# The plain-text health port answers anyone who reaches it, and a health check names one service:
# larger requests are refused, and a small window keeps what a flood of them can push in small
# (grpc's defaults let such a flood hold 870 MB there).
_HEALTH_MESSAGE_BYTES = 4096
_HEALTH_WINDOW_BYTES = 64 * 1024
