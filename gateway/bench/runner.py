"""Running one benchmark: the echo baseline and the gateway, side by side, under the same load."""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import httpx

from gateway.bench.curve import render_curve, share_label
from gateway.bench.delivery import BESIDE_WARMUP_SECONDS, DeliveryFigures, measure_delivery, render_delivery
from gateway.bench.evaluation import EvaluationFigures, measure_evaluation, render_evaluation
from gateway.bench.figures import Figures
from gateway.bench.load import ClientFleet, LoadPlan, LoadResult
from gateway.bench.processes import ServerProcess, start_echo, start_gateway
from gateway.bench.registry import RegistryFigures, measure_registry, render_registry
from gateway.bench.report import error_codes, percentile, progress
from gateway.bench.stages import (
    GatewayReadings,
    StageFigures,
    app_hit_share,
    inside_gateway,
    metrics_url,
    read_gateway,
    render_inside,
    render_stages,
    render_verdict_mix,
    stage_figures,
    verdict_mix,
)
from gateway.bench.targets import MAX_HALF_RATE_P99_MS, TargetCheck, baseline_doubt, check_targets, render_targets
from gateway.bench.workload import WorkloadMix
from gateway.config import env_variable
from gateway.store import is_postgres_url
from gateway.store.database import redact
from signals.wording import counted

# The share of a server's closed-loop rate that the latency target is measured at.
HALF = 0.5


@dataclass(frozen=True)
class BenchSettings:
    clients: int = 2
    concurrency: int = 32
    rate: float | None = None
    warmup_seconds: float = 3.0
    seconds: float = 15.0
    customers: int = 10_000
    operations: int = 2_000
    seed: int = 1
    target: str | None = None
    # > 0: import a registry of this many entries first, report its figures, and run the gateway with it.
    registry_entries: int = 0
    registry_only: bool = False
    # FREEZE verdicts pushed to a reference receiver to measure verdict-to-delivery; 0 skips it.
    deliveries: int = 300
    delivery_rate: float = 50.0
    # Logins timed stage by stage in this process (the brain's CPU per login).
    evaluation_logins: int = 400
    # Processes of the gateway started here (mtsg serve --workers).
    workers: int = 1
    # After the closed loop, each server again in open loop at half the rate it reached: the latency
    # a gateway sized with 2x headroom shows (the p99 target).
    half_rate: bool = True
    # More shares of the closed loop's rate to measure in open loop after the half-rate run (``--sweep``):
    # the latency each server shows against its load, and the highest load that keeps p99 under 10 ms.
    sweep: tuple[float, ...] = ()
    # /metrics addresses of the --target gateway's workers: its stages and own timing are read from them.
    target_metrics: tuple[str, ...] = ()
    # Clients send inventories by digest, as an SDK that uses them does; False: every login with its list.
    by_digest: bool = True


QUICK = BenchSettings(
    warmup_seconds=1.0, seconds=5.0, customers=2_000, operations=500, deliveries=100, evaluation_logins=150
)
# The large preset: a million-entry registry; 100,000 customers build history during the run.
LARGE = BenchSettings(customers=100_000, operations=4_000, registry_entries=1_000_000)


def _load_plan(target: str, settings: BenchSettings) -> LoadPlan:
    """What each of ``settings.clients`` client processes sends."""
    per_client_rate = settings.rate / settings.clients if settings.rate else None
    return LoadPlan(
        target=target,
        seed=settings.seed,
        customers=settings.customers,
        operations=settings.operations,
        concurrency=max(1, settings.concurrency // settings.clients),
        rate=per_client_rate,
        warmup_seconds=settings.warmup_seconds,
        seconds=settings.seconds,
        now=time.time(),
        by_digest=settings.by_digest,
    )


@dataclass(frozen=True)
class _Measured:
    """A server under test: where its calls go, its process when the bench started it, its /metrics."""

    name: str
    target: str
    server: ServerProcess | None = None
    metrics: tuple[str, ...] = ()


def _measure(measured: _Measured, settings: BenchSettings, share: float | None = None) -> Figures:
    name, target, server, metrics = measured.name, measured.target, measured.server, measured.metrics
    if share is not None:
        name = f"{name} {share_label(share)}"
    plan = _load_plan(target, settings)
    mode = f"open loop at {settings.rate:g}/s" if settings.rate else f"closed loop, concurrency {settings.concurrency}"
    progress(f"{name}: {settings.clients} client processes, {mode}; building {settings.operations} logins per client")
    fleet = ClientFleet(plan, settings.clients)
    start_wall = fleet.begin()
    progress(f"{name}: warming up for {settings.warmup_seconds:g} s, then measuring for {settings.seconds:g} s")
    cpu_before = cpu_after = None
    stages: tuple[StageFigures, ...] = ()
    hit_share = None
    mix = inside = None
    if server is not None or metrics:
        time.sleep(max(0.0, start_wall + settings.warmup_seconds - time.time()))
        cpu_before = server.cpu_seconds() if server is not None else None
        before = _read_or_warn(name, metrics)
        time.sleep(max(0.0, start_wall + settings.warmup_seconds + settings.seconds - time.time()))
        cpu_after = server.cpu_seconds() if server is not None else None
        after = _read_or_warn(name, metrics) if before is not None else None
        if before is not None and after is not None:
            stages, hit_share = stage_figures(before.stages, after.stages), app_hit_share(before, after)
            mix, inside = verdict_mix(before, after), inside_gateway(before, after)
    load = LoadResult.combined(fleet.results())
    latencies, requests, errors = load.latencies, load.requests, load.errors
    cpu = None
    if cpu_before is not None and cpu_after is not None and requests:
        cpu = (cpu_after - cpu_before) * 1000 / requests
    figures = Figures(
        server=name,
        requests=requests,
        errors=errors,
        throughput_per_second=requests / settings.seconds,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p95_ms=percentile(latencies, 0.95) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        p999_ms=percentile(latencies, 0.999) * 1000,
        cpu_ms_per_request=cpu,
        peak_rss_mb=server.peak_rss_mb() if server is not None else None,
        stages=stages,
        app_hit_share=hit_share,
        verdicts=mix,
        inside=inside,
        offered_share=share,
        workload=replace(load.mix, sent=requests, sent_digest_only=load.digest_only, sent_again=load.resent)
        if load.mix is not None
        else None,
    )
    progress(f"{name}: {requests} requests, {figures.throughput_per_second:.0f}/s, errors {errors or 'none'}")
    return figures


def _read_or_warn(name: str, metrics: tuple[str, ...]) -> GatewayReadings | None:
    """The gateway's figures; None, said on stderr, when its /metrics stopped answering during the run."""
    try:
        return read_gateway(metrics)
    except httpx.HTTPError as error:
        progress(f"{name}: cannot read the gateway's /metrics ({error}); its own figures are left out of this run")
        return None


@dataclass(frozen=True)
class BenchResult:
    figures: list[Figures]
    registry: RegistryFigures | None
    delivery: DeliveryFigures | None = None
    evaluation: EvaluationFigures | None = None
    # What each client process's logins were (``WorkloadMix``): devices, first logins, changed inventories.
    workload: WorkloadMix | None = None


# Every login-rate limit of the gateway the bench starts (LoginConfig's fields).
_RATE_LIMIT_SETTINGS = tuple(
    env_variable("login", name)
    for name in (
        "device_logins_per_minute",
        "device_login_burst",
        "customer_logins_per_minute",
        "customer_login_burst",
    )
)


def replay_limits() -> dict[str, str]:
    """Per-device and per-customer limits the bench's own gateway runs with.

    Each client replays a pool of a few hundred logins, so a bench device logs in dozens of times a
    minute and the abuse limits, meant for real phones, refused several per cent of the calls: fast
    answers that flattered the figures.  Raised here; an operator's own MTSG_LOGIN_* settings win.
    """
    return {name: "1000000" for name in _RATE_LIMIT_SETTINGS if name not in os.environ}


def run_bench(settings: BenchSettings) -> BenchResult:
    """Registry figures if asked, then echo, then the gateway (started here unless ``settings.target`` names one)."""
    with tempfile.TemporaryDirectory(prefix="mtsg-bench-") as data_dir:
        registry = measure_registry(Path(data_dir), settings.registry_entries) if settings.registry_entries else None
        if settings.registry_only:
            return BenchResult([], registry)
        evaluation = measure_evaluation(logins=settings.evaluation_logins, seed=settings.seed)
        echo = start_echo()
        try:
            baseline = _measure_runs(_Measured("echo", echo.target, echo), settings)
        finally:
            echo.stop()
        if settings.target:
            measured = _measure_runs(_Measured("gateway", settings.target, metrics=settings.target_metrics), settings)
            return BenchResult(
                _rows(baseline, measured), registry, evaluation=evaluation, workload=measured.as_asked.workload
            )
        store_url = os.environ.get("MTSG_STORE_URL", "")  # inherited by mtsg serve, like every MTSG_* setting
        where = (
            f"the PostgreSQL store at {redact(store_url)}" if is_postgres_url(store_url) else f"SQLite in {data_dir}"
        )
        progress(f"starting mtsg serve with {where}, {counted(settings.workers, 'worker')}")
        gateway = start_gateway(Path(data_dir), env=replay_limits(), workers=settings.workers)
        try:
            metrics = tuple(metrics_url(f"127.0.0.1:{port}") for port in gateway.metrics_ports)
            measured = _measure_runs(_Measured("gateway", gateway.target, gateway, metrics), settings)
        finally:
            gateway.stop()
        delivery = (
            measure_delivery(
                Path(data_dir),
                settings.deliveries,
                settings.delivery_rate,
                env=replay_limits(),
                workers=settings.workers,
                beside=_beside_pushes(measured.half_rate, settings),
            )
            if settings.deliveries
            else None
        )
    return BenchResult(_rows(baseline, measured), registry, delivery, evaluation, measured.as_asked.workload)


def _beside_pushes(half_rate: Figures | None, settings: BenchSettings) -> Callable[[str], ClientFleet] | None:
    """The login load to run beside the second round of pushes: the half-rate run's, long enough to cover them."""
    if half_rate is None:
        return None
    pushing_seconds = settings.deliveries / settings.delivery_rate
    beside = replace(
        settings,
        rate=half_rate.throughput_per_second,
        warmup_seconds=BESIDE_WARMUP_SECONDS,
        seconds=pushing_seconds + 2,
    )
    return lambda target: ClientFleet(_load_plan(target, beside), beside.clients)


@dataclass(frozen=True)
class _Runs:
    """One server's runs: as asked (a closed loop unless ``--rate``), then in open loop at shares of its rate."""

    as_asked: Figures
    half_rate: Figures | None = None
    sweep: tuple[Figures, ...] = ()


def _measure_runs(measured: _Measured, settings: BenchSettings) -> _Runs:
    """The load as asked; then, after a closed loop, open loop at half the rate it reached and at each sweep share."""
    as_asked = _measure(measured, settings)
    if settings.rate or not as_asked.answered:
        return _Runs(as_asked)
    reached = as_asked.answered / settings.seconds

    def at_share(share: float) -> Figures:
        return _measure(measured, replace(settings, rate=reached * share), share)

    half_rate = at_share(HALF) if settings.half_rate else None
    sweep = tuple(at_share(share) for share in settings.sweep if not (settings.half_rate and share == HALF))
    return _Runs(as_asked, half_rate, sweep)


def _rows(baseline: _Runs, measured: _Runs) -> list[Figures]:
    """echo, gateway, their half-rate runs, then their sweeps: the first two rows are always the comparison."""
    half_rates = (row for row in (baseline.half_rate, measured.half_rate) if row is not None)
    return [baseline.as_asked, measured.as_asked, *half_rates, *baseline.sweep, *measured.sweep]


def _cell(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def render_report(result: BenchResult, settings: BenchSettings) -> str:
    parts = [render_registry(result.registry)] if result.registry else []
    if result.evaluation:
        parts.append(render_evaluation(result.evaluation))
    if result.workload:
        parts.append(result.workload.describe(settings.operations))
    if result.figures:
        parts.append(_render_load(result.figures, settings))
    if result.delivery:
        parts.append(render_delivery(result.delivery))
    if result.figures:
        parts.append(render_targets(_targets(result, settings)))
    return "\n".join(parts)


def _targets(result: BenchResult, settings: BenchSettings) -> list[TargetCheck]:
    return check_targets(
        result.figures, result.evaluation, result.registry, closed_loop=not settings.rate, cores=os.cpu_count() or 1
    )


def _render_load(figures: list[Figures], settings: BenchSettings) -> str:
    header = (
        f"{'':10}{'req/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}"
        f"{'CPU ms/req':>12}{'peak RSS MB':>13}{'errors':>8}"
    )
    lines = [header]
    main_rows = [row for row in figures if row.offered_share in (None, HALF)]
    for row in main_rows:
        lines.append(
            f"{row.server:10}{row.throughput_per_second:>10.0f}{_cell(row.p50_ms):>9}{_cell(row.p95_ms):>9}"
            f"{_cell(row.p99_ms):>9}{_cell(row.p999_ms):>10}{_cell(row.cpu_ms_per_request, 3):>12}"
            f"{_cell(row.peak_rss_mb, 0):>13}{sum(row.errors.values()):>8}"
        )
    echo, gateway = figures[:2]
    lines.append(throughput_ratio(echo, gateway, settings))
    mode = f"open loop {settings.rate:g}/s" if settings.rate else f"closed loop, concurrency {settings.concurrency}"
    if len(main_rows) > 2:
        mode += "; rows '1/2': open loop at half the rate that server reached"
    lines.append(
        f"({settings.clients} client processes, {mode}, {settings.seconds:g} s measured"
        f" after {settings.warmup_seconds:g} s warm-up, seed {settings.seed}, 150-300 apps per login,"
        f" gateway workers: {settings.workers})"
    )
    half_rate = next((row for row in figures if row.server == "gateway 1/2"), None)
    if gateway.stages:
        lines.append(render_stages(gateway.stages, half_rate.stages if half_rate else ()))
    if gateway.inside is not None:
        lines.append(render_inside(gateway.inside, half_rate.inside if half_rate else None))
    if gateway.app_hit_share is not None:
        lines.append(
            f"  installed apps found already checked: {gateway.app_hit_share:.1%} (the rest decoded and checked;"
            " each device reports its apps with its own times, grants and running state)"
        )
    if gateway.verdicts is not None:
        lines.append(render_verdict_mix(gateway.verdicts))
    if settings.sweep:
        lines.append(render_curve(figures, MAX_HALF_RATE_P99_MS))
    return "\n".join(lines)


def throughput_ratio(echo: Figures, gateway: Figures, settings: BenchSettings) -> str:
    """The headline comparison, counting answered calls only, and saying when it means little.

    A gateway that refuses every call (not running, wrong port, TLS mismatch) fails them in
    microseconds; counted as throughput that read as "868% of echo".
    """
    label = "gateway/echo throughput"
    if settings.rate:
        label += f" at the offered {settings.rate:g}/s"
    failed = gateway.requests - gateway.answered
    ratio = gateway.share_of(echo)
    codes = error_codes(gateway.errors)
    if ratio is None:
        return f"{label}: not measured, {failed:,} of {gateway.requests:,} gateway calls failed ({codes})"
    line = f"{label}: {ratio:.0%}"
    if failed:
        line += f" (answered calls only; {failed:,} of {gateway.requests:,} failed: {codes})"
    if settings.rate:
        line += " (open loop: both had the same offered load; a closed-loop run measures capacity)"
    elif doubt := baseline_doubt(echo, gateway):
        line += f" ({doubt})"
    return line


def write_json(path: Path, result: BenchResult, settings: BenchSettings) -> None:
    document = {
        "settings": asdict(settings),
        "figures": [asdict(row) for row in result.figures],
        "registry": asdict(result.registry) if result.registry else None,
        "delivery": asdict(result.delivery) if result.delivery else None,
        "evaluation": asdict(result.evaluation) if result.evaluation else None,
        "workload": asdict(result.workload) if result.workload else None,
        "targets": [asdict(check) for check in _targets(result, settings)] if result.figures else [],
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
