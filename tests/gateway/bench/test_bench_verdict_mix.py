"""The bench's verdict mix: the window's verdicts from two scrapes of the gateway's /metrics."""

from __future__ import annotations

from gateway.bench.stages import GatewayReadings, VerdictMix, render_verdict_mix, verdict_mix


def _readings(verdicts: dict[str, float], held_back: float = 0.0) -> GatewayReadings:
    return GatewayReadings(stages={}, app_lookups={}, verdicts=verdicts, held_back=held_back, check_login_within={})


def test_the_mix_counts_only_the_window_and_names_the_valve_when_it_held_freezes_back() -> None:
    before = _readings({"ACTION_ALLOW": 100, "ACTION_FREEZE": 40}, held_back=5)
    after = _readings({"ACTION_ALLOW": 1_000, "ACTION_FREEZE": 40, "ACTION_STEP_UP": 60}, held_back=50)
    mix = verdict_mix(before, after)
    assert mix == VerdictMix({"ALLOW": 900, "STEP_UP": 60}, freezes_held_back=45)  # no FREEZE in the window
    assert render_verdict_mix(mix) == (
        "  verdicts: ALLOW 93.8%, STEP_UP 6.2% of 960; 45 FREEZE held back as STEP_UP by the safety valve"
        " (login.max_freezes_per_minute: the workload freezes far more often than a bank)"
    )


def test_a_closed_valve_is_not_mentioned_and_an_idle_window_has_no_mix() -> None:
    mix = verdict_mix(_readings({}), _readings({"ACTION_ALLOW": 3, "ACTION_FREEZE": 1}))
    assert mix is not None and render_verdict_mix(mix) == "  verdicts: ALLOW 75.0%, FREEZE 25.0% of 4"
    assert verdict_mix(_readings({"ACTION_ALLOW": 7}), _readings({"ACTION_ALLOW": 7})) is None
