"""One bench run's figures for one server: what the curve, the targets and the report read."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.bench.stages import InsideGateway, StageFigures, VerdictMix
from gateway.bench.workload import WorkloadMix


@dataclass(frozen=True)
class Figures:
    server: str
    requests: int
    errors: dict[str, int]
    throughput_per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float
    cpu_ms_per_request: float | None
    peak_rss_mb: float | None
    # The gateway's own timing of each login stage over the measured window.
    stages: tuple[StageFigures, ...] = ()
    # The share of installed apps the gateway found already checked over the window (None: not read).
    app_hit_share: float | None = None
    # The gateway's verdicts over the window (None: not read, or none answered).
    verdicts: VerdictMix | None = None
    # How fast the gateway itself answered the window's logins (None: not read, or none answered).
    inside: InsideGateway | None = None
    # Open loop at this share of the rate the same server reached in closed loop (None: as asked).
    offered_share: float | None = None
    # What the clients sent in this run (devices, first logins, changed inventories).
    workload: WorkloadMix | None = None

    @property
    def answered(self) -> int:
        """Calls that got an answer; failed calls end fast and would flatter the throughput."""
        return self.requests - sum(self.errors.values())

    @property
    def answered_per_second(self) -> float:
        return self.throughput_per_second * self.answered / self.requests if self.requests else 0.0

    def share_of(self, baseline: Figures) -> float | None:
        """Answered calls against ``baseline``'s (the headline gateway/echo ratio); None if either answered none."""
        return self.answered / baseline.answered if self.answered and baseline.answered else None
