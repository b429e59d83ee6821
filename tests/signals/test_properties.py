"""Whatever telemetry arrives, evaluation returns a well-formed decision and never raises."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from signals.context import LoginContext, PhoneNumberChangeSummary
from signals.evaluate import Knowledge, evaluate
from signals.policy import Action
from signals.remote_control import parse_catalog
from signals.telemetry import CallState, DeviceIntegrity, InstalledApp, LoginTelemetry, ScreenState
from tests.signals.shipped import DEFAULT_POLICY

CATALOG = parse_catalog((Path(__file__).parents[2] / "signals" / "data" / "remote_control_apps.toml").read_text())
KNOWLEDGE = Knowledge(DEFAULT_POLICY, CATALOG)
packages = st.sampled_from([*CATALOG.by_package, "com.kakao.talk", "x", "com.example.a"])
apps = st.builds(
    InstalledApp,
    package_name=packages,
    label=st.text(max_size=20),
    running=st.booleans(),
    foreground=st.booleans(),
    accessibility_service_enabled=st.booleans(),
)
logins = st.builds(
    LoginTelemetry,
    customer_id=st.text(min_size=1, max_size=10),
    device_id=st.sampled_from(["d1", "d2", "d3"]),
    collected_at=st.floats(min_value=0, max_value=4e9),
    integrity=st.builds(DeviceIntegrity, **{name: st.booleans() for name in DeviceIntegrity.__dataclass_fields__}),
    installed_apps=st.lists(apps, max_size=30).map(tuple),
    screen=st.builds(ScreenState, screen_sharing=st.booleans(), remote_input=st.booleans()),
    call=st.builds(
        CallState,
        active_call=st.booleans(),
        started_at=st.none() | st.floats(min_value=0, max_value=4e9),
        caller_in_contacts=st.none() | st.booleans(),
    ),
)
contexts = st.builds(
    LoginContext,
    now=st.floats(min_value=1e9, max_value=4e9),
    known_device_ids=st.frozensets(st.sampled_from(["d1", "d2", "d3"])),
    recent_phone_change=st.none()
    | st.builds(
        PhoneNumberChangeSummary,
        changed_at=st.floats(min_value=0, max_value=4e9),
        kind=st.just("x"),
        source=st.just("y"),
    ),
)


@settings(max_examples=300, deadline=None)
@given(logins, contexts)
def test_evaluation_never_crashes_and_is_well_formed(login: LoginTelemetry, context: LoginContext) -> None:
    decision = evaluate(login, context, KNOWLEDGE)
    assert 0 <= decision.risk_score <= 100
    assert decision.summary.endswith(".")
    assert (decision.action is Action.ALLOW) == (decision.scenario_id == "")
    if decision.action is Action.FREEZE:
        assert decision.freeze_scopes
    assert decision == evaluate(login, context, KNOWLEDGE)  # deterministic
