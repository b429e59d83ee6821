"""The fast path for clean apps and the full path that names every problem give the same answers."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import LimitsConfig
from gateway.generated.mtsg.v1 import telemetry_pb2
from gateway.validation import EARLIEST_TIME, Limits, Violations, _checked_app, _clean_app

NOW = time.time()
LIMITS = Limits.of(LimitsConfig(max_permissions_per_app=4))
LATEST = NOW + LIMITS.max_clock_skew_seconds

_texts = st.one_of(
    st.sampled_from(["", "Bank", "com.android.vending", " padded", "tab\there", "x" * 300]),
    st.text(max_size=8),
)
_digests = st.one_of(
    st.sampled_from(["", "a" * 64, "A" * 64, "ab:" * 31 + "ab", "a" * 40, "g" * 64, "a" * 63]),
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
    "package_name": st.one_of(st.sampled_from(["", "-bad", "a" * 300, "a b"]), st.text(max_size=6)),
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
def _apps(draw: st.DrawFn) -> telemetry_pb2.InstalledApp:
    """A valid app with, most of the time, one or two fields replaced by anything (often a mistake)."""
    spoiled = draw(st.sets(st.sampled_from(sorted(_ANY)), max_size=2))
    values = {name: draw(_ANY[name] if name in spoiled else _VALID[name]) for name in _VALID}
    first, last = values.pop("first_install_time"), values.pop("last_update_time")
    app = telemetry_pb2.InstalledApp(**values, running=draw(st.booleans()), system_app=draw(st.booleans()))
    app.first_install_time.seconds, app.last_update_time.seconds = first, last
    if draw(st.booleans()) and (first or last):
        app.first_install_time.nanos = draw(st.sampled_from([5, 999_999_999]))
    return app


@settings(max_examples=1500, deadline=None)
@given(_apps())
def test_the_fast_path_agrees_with_the_full_one(app: telemetry_pb2.InstalledApp) -> None:
    violations = Violations()
    checked = _checked_app(0, app, {}, LIMITS, LATEST, violations)
    fast = _clean_app(app, LIMITS, LATEST)
    if fast is not None:
        assert violations.found == [], "the fast path accepted an app the full path refuses"
        assert fast == checked
    elif not violations.found:
        # Only normalising a digest may send a valid app down the full path.
        digests = (app.apk_sha256, app.signing_cert_sha256, app.signing_cert_sha1)
        canonical = (checked.apk_sha256, checked.signing_cert_sha256, checked.signing_cert_sha1)
        assert digests != canonical, "a clean, canonical app missed the fast path"
