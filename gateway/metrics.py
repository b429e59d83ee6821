"""Prometheus metrics, each gateway with its own registry.

A registry per gateway (not prometheus_client's global one) lets tests run
several gateways in one process and keeps what /metrics shows exactly ours.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

# Login checks are expected in single-digit milliseconds; the buckets resolve that range finely.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    rpc_requests: Counter
    rpc_duration: Histogram
    verdicts: Counter

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry()
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
            verdicts=Counter("mtsg_verdicts", "CheckLogin verdicts, by action", ["action"], registry=registry),
        )
