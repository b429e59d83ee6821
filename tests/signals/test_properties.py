"""Whatever telemetry arrives, evaluation returns a well-formed decision and never raises."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from signals.context import DeviceInventory, LoginContext, PastLocation, PhoneNumberChangeSummary
from signals.evaluate import Knowledge, evaluate
from signals.policy import Action
from signals.policy_document import PolicyError, policy_problems, read_policy
from signals.remote_control import parse_catalog
from signals.telemetry import (
    Attestation,
    CallState,
    DeviceIntegrity,
    InstalledApp,
    InstallerClass,
    Location,
    LoginTelemetry,
    ScreenState,
)
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
    installer_class=st.sampled_from(InstallerClass),
    system_app=st.booleans(),
    granted_permissions=st.lists(
        st.sampled_from(["android.permission.READ_SMS", "CALL_PHONE", "SYSTEM_ALERT_WINDOW", "x.y.Z", ""]), max_size=4
    ).map(tuple),
    device_admin=st.booleans(),
    draw_over_apps=st.booleans(),
)
latitudes = st.floats(min_value=-90, max_value=90)
longitudes = st.floats(min_value=-180, max_value=180)
countries = st.sampled_from(["", "KR", "JP", "US"])
locations = st.builds(
    Location,
    latitude=latitudes,
    longitude=longitudes,
    accuracy_meters=st.floats(min_value=0, max_value=2e7),
    country_code=countries,
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
    location=st.none() | locations,
    vpn_active=st.booleans(),
    attestation=st.none()
    | st.builds(
        Attestation,
        provider=st.just("play"),
        meets_basic_integrity=st.booleans(),
        meets_device_integrity=st.booleans(),
        app_recognized=st.booleans(),
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
    recent_locations=st.lists(
        st.builds(
            PastLocation,
            observed_at=st.floats(min_value=0, max_value=4e9),
            latitude=latitudes,
            longitude=longitudes,
            accuracy_meters=st.floats(min_value=0, max_value=2e7),
            country_code=countries,
        ),
        max_size=5,
    ).map(tuple),
    other_customers_on_device=st.integers(min_value=0, max_value=10_000),
    previous_inventory=st.none()
    | st.builds(
        DeviceInventory,
        observed_at=st.floats(min_value=0, max_value=4e9),
        package_names=st.frozensets(packages),
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


def _toml(value: object) -> str:
    """Inline TOML for the generated values (strings, integers, lists, tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    assert isinstance(value, dict)
    return "{ " + ", ".join(f"{key} = {_toml(item)}" for key, item in value.items()) + " }"


codes = st.sampled_from(["ACTIVE_CALL", "NEW_DEVICE", "MALICIOUS_APP_*", "SCREEN_SHARED", "UNUSUAL_LOCATION"])
_MISTAKES: list[dict[str, object]] = [
    {"code": "BOGUS"},
    {"min_severity": "loud"},
    {"min_count": -1},
    {"category": "nope"},
]
mistakes = st.sampled_from(_MISTAKES)
leaves = st.fixed_dictionaries(
    {"code": codes},
    optional={
        "min_severity": st.sampled_from(["info", "low", "medium", "high"]),
        "at_least": st.fixed_dictionaries({"distance_km": st.integers(min_value=0, max_value=2000)}),
    },
).filter(lambda leaf: "at_least" not in leaf or leaf["code"] == "UNUSUAL_LOCATION")
# Mostly valid leaves (so most policies go live and are evaluated), sometimes a mistake.
maybe_wrong_leaves = st.one_of(leaves, leaves, leaves, st.tuples(leaves, mistakes).map(lambda p: {**p[0], **p[1]}))
conditions = st.recursive(
    maybe_wrong_leaves,
    lambda children: st.one_of(
        st.fixed_dictionaries({"all": st.lists(children, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"any": st.lists(children, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"not": children}),
    ),
    max_leaves=6,
)
_ACTION_FIELDS: dict[str, dict[str, object]] = {
    "allow": {},
    "step_up": {"step_up_method": "otp"},
    "freeze": {"freeze_scopes": ["transfers", "card_loans"]},
}


def _scenario(index: int, action: str, when: dict[str, object], score: int, mode: str) -> dict[str, object]:
    return {
        "id": f"s{index}",
        "description": "generated",
        "action": action,
        **_ACTION_FIELDS[action],
        "score": score,
        "mode": mode,
        "when": when,
    }


scenario_lists = st.lists(
    st.tuples(
        st.sampled_from(sorted(_ACTION_FIELDS)),
        conditions,
        st.integers(min_value=0, max_value=100),
        st.sampled_from(["active", "active", "shadow"]),
    ),
    min_size=1,
    max_size=4,
).map(lambda rows: [_scenario(i, *row) for i, row in enumerate(rows)])


@settings(max_examples=200, deadline=None)
@given(scenario_lists, logins, contexts)
def test_any_generated_policy_is_either_refused_with_problems_or_decides_cleanly(
    tables: list[dict[str, object]], login: LoginTelemetry, context: LoginContext
) -> None:
    document = "\n".join(
        "[[scenarios]]\n" + "\n".join(f"{key} = {_toml(value)}" for key, value in table.items()) for table in tables
    )
    try:
        policy = read_policy(document, "p")
    except PolicyError as error:
        assert error.problems and all(problem.message for problem in error.problems)
        return
    decision = evaluate(login, context, Knowledge(policy, CATALOG))
    assert 0 <= decision.risk_score <= 100
    assert decision.policy_version == "p"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_validation_never_raises_on_arbitrary_text(text: str) -> None:
    assert isinstance(policy_problems(text), list)
