"""The gateway's own timing of each CheckLogin stage under the bench's load, read from its /metrics.

The brain's stages are timed in the bench's own process (``evaluation``); the store's and
the outbox's cost only shows inside a loaded gateway, so the bench reads the gateway's
``mtsg_login_stage_seconds`` histogram from every worker before and after the measured
window and reports the mean of each stage over that window.  From the same scrape it reads
``mtsg_app_cache_lookups_total``: the share of installed apps the gateway found already checked;
and the verdicts by action with the FREEZE verdicts the safety valve held back.  The workload
asks for FREEZE far more often than a bank sees it, so the valve trips seconds into a run:
the figures are those of a gateway with its valve open, and the report says so.

Last, the share of CheckLogin calls the gateway itself answered within 5 and 10 ms, from
``mtsg_rpc_duration_seconds`` (our interceptor's start to the answer).  Its buckets are too
coarse for a percentile, but exact at their edges: at least 99% under 10 ms means the
gateway's own p99 is under 10 ms.  Beside the clients' p99 it tells how much of the latency
target's miss is the gateway's and how much the transport's and the machine's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from gateway.bench.workload import CHECK_LOGIN

_STAGES = "mtsg_login_stage_seconds"
_APP_LOOKUPS = "mtsg_app_cache_lookups"
_VERDICTS = "mtsg_verdicts"
_HELD_BACK = "mtsg_freezes_degraded"
_RPC_DURATION = "mtsg_rpc_duration_seconds"
# The bucket edges of mtsg_rpc_duration_seconds the report names: the latency target's and half of it.
INSIDE_BOUNDS_MS = (5.0, 10.0)
# counter -> the label its window's counts are kept by ("": one count)
_COUNTERS = {_APP_LOOKUPS: "result", _VERDICTS: "action", _HELD_BACK: ""}
# stage -> (seconds, observations), added up over the workers
StageTotals = dict[str, tuple[float, float]]


@dataclass(frozen=True)
class StageFigures:
    stage: str
    logins: int
    mean_ms: float


@dataclass(frozen=True)
class GatewayReadings:
    """What the bench reads off the gateway's /metrics at each end of a measured window."""

    stages: StageTotals
    # "hit" / "miss" -> installed apps looked up among those already checked (gateway.login.checked_apps)
    app_lookups: dict[str, float]
    # "ACTION_ALLOW", ... -> verdicts answered; a FREEZE the valve held back counts as the STEP_UP it became
    verdicts: dict[str, float]
    # FREEZE verdicts the safety valve turned into STEP_UP
    held_back: float
    # bucket edge in seconds (math.inf last) -> CheckLogin calls answered within it, all codes and workers
    check_login_within: dict[float, float]


@dataclass(frozen=True)
class VerdictMix:
    """The verdicts of a measured window: what the workload made the gateway answer."""

    by_action: dict[str, int]
    freezes_held_back: int


@dataclass(frozen=True)
class InsideGateway:
    """How fast the gateway itself answered a measured window's CheckLogin calls."""

    logins: int
    # (bucket edge in ms, share of the logins answered within it), for INSIDE_BOUNDS_MS
    within: tuple[tuple[float, float], ...]

    def share_within(self, bound_ms: float) -> float | None:
        """None for a bound the report does not read (not one of INSIDE_BOUNDS_MS)."""
        return dict(self.within).get(bound_ms)


def metrics_url(address: str) -> str:
    """``HOST:PORT`` as the gateway's /metrics address; a full http(s) URL as it is."""
    return address if address.startswith(("http://", "https://")) else f"http://{address}/metrics"


def read_gateway(metrics_urls: Sequence[str]) -> GatewayReadings:
    """Every worker's /metrics added up; raises httpx.HTTPError when one cannot be read."""
    totals: dict[str, list[float]] = {}
    counts: dict[str, dict[str, float]] = {name: {} for name in _COUNTERS}
    within: dict[float, float] = {}
    for url in metrics_urls:
        response = httpx.get(url, timeout=10)
        response.raise_for_status()
        text = response.text
        for family in text_string_to_metric_families(text):
            if family.name in _COUNTERS:
                label, counted = _COUNTERS[family.name], counts[family.name]
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        key = sample.labels.get(label, "")
                        counted[key] = counted.get(key, 0.0) + sample.value
                continue
            if family.name == _RPC_DURATION:
                _add_check_login_buckets(family.samples, within)
                continue
            if family.name != _STAGES:
                continue
            for sample in family.samples:
                stage = sample.labels.get("stage", "")
                slot = totals.setdefault(stage, [0.0, 0.0])
                if sample.name.endswith("_sum"):
                    slot[0] += sample.value
                elif sample.name.endswith("_count"):
                    slot[1] += sample.value
    stages = {stage: (seconds, count) for stage, (seconds, count) in totals.items()}
    held_back = sum(counts[_HELD_BACK].values())
    return GatewayReadings(stages, counts[_APP_LOOKUPS], counts[_VERDICTS], held_back, within)


def _add_check_login_buckets(samples: list[Sample], within: dict[float, float]) -> None:
    for sample in samples:
        if sample.name.endswith("_bucket") and sample.labels.get("method") == CHECK_LOGIN:
            edge = float(sample.labels["le"])
            within[edge] = within.get(edge, 0.0) + sample.value


def unreadable_metrics(metrics_urls: Sequence[str]) -> str | None:
    """Why the bench could not read a gateway's login figures from ``metrics_urls``; None when it can.

    Checked before the run, so that a wrong address fails in a second rather than after the echo's.
    """
    try:
        readings = read_gateway(metrics_urls)
    except httpx.HTTPError as error:
        return f"cannot read {', '.join(metrics_urls)}: {error}"
    if not readings.stages:
        return f"{', '.join(metrics_urls)} has no {_STAGES}: not the /metrics of an mtsg gateway"
    return None


def inside_gateway(before: GatewayReadings, after: GatewayReadings) -> InsideGateway | None:
    """The window's CheckLogin calls and the shares answered within each of INSIDE_BOUNDS_MS; None if none."""

    def window(edge: float) -> float:
        return after.check_login_within.get(edge, 0.0) - before.check_login_within.get(edge, 0.0)

    logins = window(math.inf)
    if logins <= 0:
        return None
    return InsideGateway(int(logins), tuple((bound, window(bound / 1000) / logins) for bound in INSIDE_BOUNDS_MS))


def render_inside(closed_loop: InsideGateway, half_rate: InsideGateway | None) -> str:
    def shares(figures: InsideGateway) -> str:
        edges = ", ".join(f"{share_text(share)} under {bound:g} ms" for bound, share in figures.within)
        return f"{edges} of {figures.logins:,}"

    line = f"  CheckLogin inside the gateway (its interceptor's start to the answer): {shares(closed_loop)}"
    return line + (f"; at 1/2: {shares(half_rate)}" if half_rate else "")


def verdict_mix(before: GatewayReadings, after: GatewayReadings) -> VerdictMix | None:
    """The window's verdicts by action; None when it answered none."""
    by_action = {
        action.removeprefix("ACTION_"): int(count - before.verdicts.get(action, 0.0))
        for action, count in sorted(after.verdicts.items())
    }
    by_action = {action: count for action, count in by_action.items() if count > 0}
    if not by_action:
        return None
    return VerdictMix(by_action, int(after.held_back - before.held_back))


def render_verdict_mix(mix: VerdictMix) -> str:
    total = sum(mix.by_action.values())
    shares = ", ".join(f"{action} {count / total:.1%}" for action, count in mix.by_action.items())
    line = f"  verdicts: {shares} of {total:,}"
    if mix.freezes_held_back:
        line += (
            f"; {mix.freezes_held_back:,} FREEZE held back as STEP_UP by the safety valve"
            " (login.max_freezes_per_minute: the workload freezes far more often than a bank)"
        )
    return line


def app_hit_share(before: GatewayReadings, after: GatewayReadings) -> float | None:
    """The share of the window's installed apps found already checked; None when no app was looked up."""
    hits = after.app_lookups.get("hit", 0.0) - before.app_lookups.get("hit", 0.0)
    misses = after.app_lookups.get("miss", 0.0) - before.app_lookups.get("miss", 0.0)
    return hits / (hits + misses) if hits + misses > 0 else None


def stage_figures(before: StageTotals, after: StageTotals) -> tuple[StageFigures, ...]:
    figures = []
    for stage, (seconds, count) in after.items():
        seconds_before, count_before = before.get(stage, (0.0, 0.0))
        logins = int(count - count_before)
        if logins > 0:
            figures.append(StageFigures(stage, logins, (seconds - seconds_before) * 1000 / logins))
    return tuple(figures)


def render_stages(figures: tuple[StageFigures, ...], half_rate: tuple[StageFigures, ...] = ()) -> str:
    """The closed loop's stages and, beside them, the half-rate run's: the run the p99 target is judged on."""
    lines = ["gateway stages under load (wall time inside the gateway, mean per login, all workers):"]
    halves = {row.stage: row for row in half_rate}
    lines.append(
        f"  {'stage':16}{'logins':>8}{'mean ms':>10}" + (f"{'at 1/2: logins':>16}{'mean ms':>10}" if halves else "")
    )
    for row in figures:
        line = f"  {row.stage:16}{row.logins:>8}{row.mean_ms:>10.3f}"
        half = halves.get(row.stage)
        lines.append(f"{line}{half.logins:>16}{half.mean_ms:>10.3f}" if half else line)
    lines.append(
        "  (history: the five reads; record: verdict, device, location, inventory, nonce in one transaction;"
        " record_command: the same with the outbox command)"
    )
    return "\n".join(lines)


def share_cell(share: float | None) -> str:
    """A share for a table's cell; "n/a" where it was not read."""
    return "n/a" if share is None else share_text(share)


def share_text(share: float) -> str:
    """One decimal, but never "100.0%" for a share short of all: that would claim every call."""
    return ">99.9%" if share < 1 and f"{share:.1%}" == "100.0%" else f"{share:.1%}"
