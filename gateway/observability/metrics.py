"""Prometheus metrics, each gateway with its own registry.

A registry per gateway (not prometheus_client's global one) lets tests run
several gateways in one process and keeps what /metrics shows exactly ours.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from gateway.observability.logging_setup import LossTolerantStream
from gateway.observability.version import mtsg_version

# Login checks are expected in single-digit milliseconds; the buckets resolve that range finely.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# A login's stages take tens of microseconds to milliseconds.
STAGE_BUCKETS = (0.00005, 0.0001, 0.00025, *LATENCY_BUCKETS)
# CheckLogin's stages: checking the request, reading the history, the brain, writing the verdict
# (record) or the verdict with its outbox command (record_command).
LOGIN_STAGES = ("validate", "history", "evaluate", "record", "record_command")


class _DroppedLogLines(Collector):
    """Read at each scrape from the log stream, which counts before any Metrics exists."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "mtsg_log_lines_dropped",
            "Log lines dropped because stderr could not take them (its reader gone or stalled, its disk full)",
            value=LossTolerantStream.dropped_lines,
        )


def _build_info(registry: CollectorRegistry) -> Gauge:
    """Always 1, labelled with what this replica runs: a rollout that stopped half way shows two versions."""
    info = Gauge(
        "mtsg_build_info",
        "1, labelled with this gateway's mtsg and Python versions",
        ["version", "python"],
        registry=registry,
    )
    info.labels(version=mtsg_version(), python=platform.python_version()).set(1)
    return info


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    rpc_requests: Counter
    rpc_duration: Histogram
    rpc_refusals: Counter
    login_stage: Histogram
    verdicts: Counter
    commands_created: Counter
    delivery_attempts: Counter
    delivery_latency: Histogram
    dead_letters: Counter
    command_backlog: Gauge
    command_stranded: Gauge
    command_stream_unacknowledged: Gauge
    auth_rejections: Counter
    rate_limited: Counter
    insecure_mode: Gauge
    safety_valve_open: Gauge
    freezes_degraded: Counter
    fail_mode_verdicts: Counter
    purged_rows: Counter
    app_cache_lookups: Counter
    app_cache_entries: Gauge
    app_cache_bytes: Gauge
    held_inventory_lookups: Counter
    held_inventory_bytes: Gauge
    feed_last_success: Gauge
    feed_sync_failures: Counter
    blocklist_version: Gauge
    policy_version: Gauge
    tls_expiry: Gauge
    build_info: Gauge

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry()
        registry.register(_DroppedLogLines())
        return cls(
            registry=registry,
            rpc_requests=Counter(
                "mtsg_rpc_requests",
                "gRPC calls handled, by method and status code",
                ["method", "code"],
                registry=registry,
            ),
            rpc_duration=Histogram(
                "mtsg_rpc_duration_seconds",
                "gRPC call latency, by method and status code",
                ["method", "code"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            rpc_refusals=Counter(
                "mtsg_rpc_refusals",
                "gRPC calls answered with an error, by method and the ErrorInfo reason the caller got",
                ["method", "reason"],
                registry=registry,
            ),
            login_stage=Histogram(
                "mtsg_login_stage_seconds",
                "Wall time of each stage of a CheckLogin (waits for the store included), by stage",
                ["stage"],
                buckets=STAGE_BUCKETS,
                registry=registry,
            ),
            verdicts=Counter("mtsg_verdicts", "CheckLogin verdicts, by action", ["action"], registry=registry),
            commands_created=Counter(
                "mtsg_commands_created", "Commands written to the outbox, by type", ["type"], registry=registry
            ),
            delivery_attempts=Counter(
                "mtsg_command_delivery_attempts",
                "Webhook delivery attempts, by endpoint and outcome (delivered, retry, dead, gone)",
                ["endpoint", "outcome"],
                registry=registry,
            ),
            delivery_latency=Histogram(
                "mtsg_command_delivery_latency_seconds",
                "From the command's creation (the verdict) to its successful delivery, by endpoint",
                ["endpoint"],
                buckets=(*LATENCY_BUCKETS, 10.0, 30.0, 60.0, 300.0, 1800.0),
                registry=registry,
            ),
            dead_letters=Counter(
                "mtsg_command_dead_letters",
                "Deliveries given up after the last attempt, by endpoint",
                ["endpoint"],
                registry=registry,
            ),
            command_backlog=Gauge(
                "mtsg_command_backlog",
                "Deliveries waiting to be sent (pending, including retries), by endpoint",
                ["endpoint"],
                registry=registry,
            ),
            command_stranded=Gauge(
                "mtsg_command_stranded_deliveries",
                "Deliveries pending for an endpoint no longer in commands.endpoint_urls: nothing sends them"
                " until `mtsg commands move-endpoint` hands them to a configured one",
                ["endpoint"],
                registry=registry,
            ),
            command_stream_unacknowledged=Gauge(
                "mtsg_command_stream_unacknowledged_seconds",
                "Age of the oldest command a stream consumer (CommandFeedService.Ack) has yet to acknowledge;"
                " 0 when every consumer is caught up",
                registry=registry,
            ),
            auth_rejections=Counter(
                "mtsg_auth_rejections",
                "Calls refused before any work: unauthenticated or permission denied, by reason",
                ["reason"],
                registry=registry,
            ),
            rate_limited=Counter(
                "mtsg_rate_limited",
                "Logins and calls refused by an abuse limit: in_flight, device, customer (RESOURCE_EXHAUSTED), replay",
                ["limit"],
                registry=registry,
            ),
            insecure_mode=Gauge(
                "mtsg_insecure_mode", "1 while the gateway runs without TLS and authentication", registry=registry
            ),
            safety_valve_open=Gauge(
                "mtsg_safety_valve_open",
                "1 while the FREEZE safety valve is tripped and FREEZE verdicts are degraded to STEP_UP",
                registry=registry,
            ),
            freezes_degraded=Counter(
                "mtsg_freezes_degraded", "FREEZE verdicts degraded to STEP_UP by the safety valve", registry=registry
            ),
            fail_mode_verdicts=Counter(
                "mtsg_fail_mode_verdicts",
                "Logins answered with the configured fail mode because the store did not answer in time",
                registry=registry,
            ),
            purged_rows=Counter(
                "mtsg_purged_rows",
                "Rows the retention job removed because they passed their configured age, by table",
                ["table"],
                registry=registry,
            ),
            app_cache_lookups=Counter(
                "mtsg_app_cache_lookups",
                "Installed apps of logins looked up among the apps already checked: hit, or miss (decoded and checked)",
                ["result"],
                registry=registry,
            ),
            app_cache_entries=Gauge(
                "mtsg_app_cache_entries",
                "Installed apps kept already checked (login.app_cache_entries)",
                registry=registry,
            ),
            app_cache_bytes=Gauge(
                "mtsg_app_cache_bytes",
                "Memory the kept apps are counted at (login.app_cache_bytes)",
                registry=registry,
            ),
            held_inventory_lookups=Counter(
                "mtsg_held_inventory_lookups",
                "Logins that sent an inventory digest without the list, by where its apps came from:"
                " memory, store, or unknown (refused with INVENTORY_UNKNOWN)",
                ["result"],
                registry=registry,
            ),
            held_inventory_bytes=Gauge(
                "mtsg_held_inventory_bytes",
                "Memory the inventories kept by digest are counted at (login.held_inventory_bytes)",
                registry=registry,
            ),
            feed_last_success=Gauge(
                "mtsg_feed_last_success_timestamp_seconds",
                "When each followed feed was last fetched and verified (0: never), by feed (its URL without"
                " credentials or query)",
                ["feed"],
                registry=registry,
            ),
            feed_sync_failures=Counter(
                "mtsg_feed_sync_failures",
                "Feed sync attempts that failed (fetch, signature, format, store), by feed",
                ["feed"],
                registry=registry,
            ),
            blocklist_version=Gauge(
                "mtsg_blocklist_version_in_force",
                "The registry version this gateway's matcher holds (replicas catch up within the refresh interval)",
                registry=registry,
            ),
            policy_version=Gauge(
                "mtsg_policy_version_in_force",
                "The detection policy version this gateway decides with (an older build keeps its last valid one)",
                registry=registry,
            ),
            tls_expiry=Gauge(
                "mtsg_tls_certificate_expiry_timestamp_seconds",
                "When the gRPC port's certificate expires, in seconds since the epoch (0 without TLS)",
                registry=registry,
            ),
            build_info=_build_info(registry),
        )
