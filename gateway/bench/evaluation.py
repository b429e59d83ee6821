"""The brain's cost per login, stage by stage, in this process.

The same 150-300-app logins the load uses are decoded, validated, run through
every detector and then the policy, each stage timed in CPU microseconds over
hundreds of logins.  Validation is timed twice, as the gateway meets a login:
with apps it has not checked before (each decoded and checked) and with apps it
has checked at earlier logins (found by their bytes, ``gateway.login.checked_apps``).
The context is a returning customer's: a known device, 20 recent located logins
and the device's previous app inventory, so the history detectors do their full
work.  Decoding is the baseline: any gRPC service pays it for these bytes, so the
brain's stages read best next to it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from gateway.bench.report import percentile, progress
from gateway.bench.workload import CHECK_LOGIN, Workload
from gateway.config import Config
from gateway.generated.mtsg.v1 import threat_signal_service_pb2
from gateway.login.checked_apps import CheckedApps
from gateway.login.validation import Limits, parse_check_login
from gateway.login.wire import decode_check_login
from gateway.policy.knowledge import load_knowledge
from signals.context import DeviceInventory, LoginContext, PastLocation
from signals.evaluate import detect
from signals.policy import decide
from signals.telemetry import LoginTelemetry

STAGES = ("decode", "validate", "validate_kept", "detectors", "policy")
_STAGE_LABELS = {"validate": "validate, new apps", "validate_kept": "validate, apps kept"}


@dataclass(frozen=True)
class EvaluationFigures:
    logins: int
    apps_per_login_mean: float
    # Stage -> (p50, p99) in microseconds of CPU per login.
    stages_us: dict[str, tuple[float, float]]
    evaluate_us_mean: float


def _history(login: LoginTelemetry, now: float) -> LoginContext:
    """A returning customer: known device, recent logins nearby, most of today's apps already seen."""
    location = login.location
    lat, lon = (location.latitude, location.longitude) if location else (37.5, 127.0)
    recent = tuple(PastLocation(now - hours * 3600, lat + hours / 1000, lon, 30.0, "KR") for hours in range(1, 21))
    seen = frozenset(app.package_name for app in login.installed_apps[:-3])
    return LoginContext(
        now=now,
        known_device_ids=frozenset({login.device_id}),
        recent_locations=recent,
        other_customers_on_device=1,
        previous_inventory=DeviceInventory(now - 86400, seen),
    )


def _cpu_us(action: Callable[[], object], repeat: int = 1) -> float:
    started = time.process_time()
    for _ in range(repeat):
        action()
    return (time.process_time() - started) / repeat * 1e6


def measure_evaluation(logins: int = 400, seed: int = 1) -> EvaluationFigures:
    progress(f"timing the brain stage by stage over {logins} logins")
    now = time.time()
    limits = Limits.of(Config())
    knowledge = load_knowledge()
    bodies = [op.body for op in Workload(seed, 1000, now).operations(logins * 2) if op.method == CHECK_LOGIN][:logins]
    samples: dict[str, list[float]] = {stage: [] for stage in STAGES}
    apps = 0
    # process_time has a coarse tick on some kernels: each stage repeats enough to be well above it.
    repeat = 20
    kept = CheckedApps(limits, max_entries=1_000_000)

    def validate(body: bytes, checked: Callable[[], CheckedApps]) -> None:
        parse_check_login(decode_check_login(body), limits, now, checked())

    for body in bodies:
        login = parse_check_login(decode_check_login(body), limits, now, kept).telemetry
        context = _history(login, now)
        findings = detect(login, context, knowledge)
        apps += len(login.installed_apps)
        samples["decode"].append(_cpu_us(partial(threat_signal_service_pb2.CheckLoginRequest.FromString, body), repeat))
        samples["validate"].append(_cpu_us(partial(validate, body, partial(CheckedApps, limits, 20_000)), repeat))
        samples["validate_kept"].append(_cpu_us(partial(validate, body, lambda: kept), repeat))
        samples["detectors"].append(_cpu_us(partial(detect, login, context, knowledge), repeat))
        samples["policy"].append(_cpu_us(partial(decide, findings, knowledge.policy), repeat))
    stages = {}
    for stage, values in samples.items():
        values.sort()
        stages[stage] = (round(percentile(values, 0.5), 1), round(percentile(values, 0.99), 1))
    mean = sum(samples["detectors"]) / len(bodies) + sum(samples["policy"]) / len(bodies)
    return EvaluationFigures(len(bodies), round(apps / len(bodies), 1), stages, round(mean, 1))


def render_evaluation(figures: EvaluationFigures) -> str:
    lines = [
        f"brain, CPU per login ({figures.logins} logins, {figures.apps_per_login_mean:.0f} apps on average,"
        " returning customer with history):",
        f"  {'stage':<20}{'p50 us':>9}{'p99 us':>9}",
    ]
    for stage in STAGES:
        p50, p99 = figures.stages_us[stage]
        lines.append(f"  {_STAGE_LABELS.get(stage, stage):<20}{p50:>9.1f}{p99:>9.1f}")
    lines.append(f"  evaluation (detectors + policy) mean {figures.evaluate_us_mean:.0f} us; decode is the baseline")
    return "\n".join(lines)
