"""The fast path for clean apps and the full path that names every problem give the same answers."""

from __future__ import annotations

import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.bench.workload import CHECK_LOGIN, Workload
from gateway.config import Config, LimitsConfig
from gateway.generated.mtsg.v1 import telemetry_pb2, threat_signal_service_pb2
from gateway.login.validation import Limits, _checked_app, clean_apps
from gateway.violations import EARLIEST_TIME, Violations

NOW = time.time()
LIMITS = Limits.of(Config(limits=LimitsConfig(max_permissions_per_app=4)))
LATEST = NOW + LIMITS.max_clock_skew_seconds

_texts = st.one_of(
    st.sampled_from(
        ["", "Bank", "com.android.vending", " padded", "padded ", "a\n b", "tab\there", "\u3000", "x" * 300]
    ),
    st.text(max_size=8),
)
_digests = st.one_of(
    st.sampled_from(
        ["", "a" * 64, "A" * 64, "ab:" * 31 + "ab", "a" * 40, "g" * 64, "a" * 63, "a" * 64 + "\n" + "b" * 64]
    ),
    st.text(alphabet="0123456789abcdefABCDEF:-", max_size=70),
)
_seconds = st.one_of(
    st.just(0), st.integers(EARLIEST_TIME - 10, EARLIEST_TIME + 10), st.integers(int(LATEST) - 2, int(LATEST) + 2)
)


_VALID = {
    "package_name": st.sampled_from(["com.bank.app", "kr.co.app_2", "A.b-c"]),
    "label": st.sampled_from(["", "Bank", "카카오뱅크"]),
    "version_name": st.sampled_from(["", "1.2.3"]),
    "installer_package": st.sampled_from(["", "com.android.vending"]),
    "installer_class": st.integers(0, 5),
    "apk_sha256": st.sampled_from(["", "a" * 64, "0123456789abcdef" * 4]),
    "signing_cert_sha256": st.sampled_from(["", "f" * 64]),
    "signing_cert_sha1": st.sampled_from(["", "b" * 40]),
    "granted_permissions": st.lists(st.sampled_from(["android.permission.READ_SMS", "p"]), max_size=4),
    "first_install_time": st.just(0) | st.integers(EARLIEST_TIME, int(NOW)),
    "last_update_time": st.just(0) | st.integers(EARLIEST_TIME, int(NOW)),
}
_ANY = {
    "package_name": st.one_of(st.sampled_from(["", "-bad", "a" * 300, "a b", "a\nb", "a\n"]), st.text(max_size=6)),
    "label": _texts,
    "version_name": _texts,
    "installer_package": _texts,
    "installer_class": st.integers(-3, 9),
    "apk_sha256": _digests,
    "signing_cert_sha256": _digests,
    "signing_cert_sha1": st.one_of(_digests, st.just("B" * 40)),
    "granted_permissions": st.lists(_texts, max_size=6),
    "first_install_time": _seconds,
    "last_update_time": _seconds,
}


@st.composite
def app_or_mistake(draw: st.DrawFn) -> telemetry_pb2.InstalledApp:
    """A valid app with, most of the time, one or two fields replaced by anything (often a mistake)."""
    spoiled = draw(st.sets(st.sampled_from(sorted(_ANY)), max_size=2))
    values: dict[str, Any] = {name: draw(_ANY[name] if name in spoiled else _VALID[name]) for name in _VALID}
    first, last = values.pop("first_install_time"), values.pop("last_update_time")
    app = telemetry_pb2.InstalledApp(**values, running=draw(st.booleans()), system_app=draw(st.booleans()))
    app.first_install_time.seconds, app.last_update_time.seconds = first, last
    if draw(st.booleans()) and (first or last):
        app.first_install_time.nanos = draw(st.sampled_from([5, 999_999_999]))
    if draw(st.integers(0, 9)) == 0:  # now and then a nanos field no timestamp may hold
        app.last_update_time.nanos = draw(st.sampled_from([-1, 1_000_000_000]))
    return app


@settings(max_examples=1500, deadline=None)
@given(st.lists(app_or_mistake(), min_size=1, max_size=4))
def test_the_fast_path_agrees_with_the_full_one(apps: list[telemetry_pb2.InstalledApp]) -> None:
    violations = Violations()
    seen: dict[str, int] = {}
    checked = tuple(_checked_app(index, app, seen, LIMITS, LATEST, violations) for index, app in enumerate(apps))
    fast = clean_apps(apps, LIMITS, LATEST)
    if fast is not None:
        assert violations.found == [], "the fast path accepted apps the full path refuses"
        assert fast == checked
    else:
        assert violations.found, "a valid login missed the fast path"


def test_the_only_printable_whitespace_is_the_plain_space() -> None:
    """What lets the fast path check surrounding whitespace by looking for spaces alone."""
    printable_spaces = [code for code in range(0x110000) if chr(code).isprintable() and chr(code).isspace()]
    assert printable_spaces == [0x20]


def test_the_benchmark_logins_take_the_fast_path() -> None:
    """The figures in BENCHMARKS.md are of the fast path; a check that quietly refused all would hide it."""
    workload = Workload(seed=3, customers=50, now=NOW)
    logins = [
        threat_signal_service_pb2.CheckLoginRequest.FromString(operation.body).telemetry
        for _ in range(20)
        for operation in workload.sequence()
        if operation.method == CHECK_LOGIN
    ]
    assert len(logins) >= 15
    for login in logins:
        assert clean_apps(login.installed_apps, LIMITS, LATEST) is not None
