"""The matcher: every key type, validity, revocation through the overlay, collisions."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

import blocklists.matcher as matcher_module
from blocklists.entry import Category, Indicator, KeyType, make_indicator
from blocklists.matcher import Matcher
from signals.telemetry import InstalledApp

NOW = 1_800_000_000.0


def digest(seed: str, length: int = 64) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:length]


def app(package: str, seed: str = "") -> InstalledApp:
    seed = seed or package
    return InstalledApp(
        package_name=package,
        apk_sha256=digest("apk" + seed),
        signing_cert_sha256=digest("cert" + seed),
        signing_cert_sha1=digest("sha1" + seed, 40),
    )


def indicator(key_type: str, value: str, **fields: object) -> Indicator:
    arguments: dict[str, object] = {"category": "banker_trojan", "family": "Fam", **fields}
    return make_indicator(key_type=key_type, value=value, **arguments)  # type: ignore[arg-type]


def test_each_key_type_matches_its_own_property() -> None:
    bad = app("com.bad.one")
    entries = [
        indicator("apk_sha256", bad.apk_sha256),
        indicator("cert_sha256", bad.signing_cert_sha256),
        indicator("cert_sha1", bad.signing_cert_sha1),
        indicator("package_name", "com.bad.one"),
        indicator("package_and_cert", bad.signing_cert_sha256, package_name="com.bad.one"),
    ]
    matcher = Matcher.build(entries, version=1)
    matches = matcher.match([app("com.good"), bad, app("com.other")], NOW)
    assert sorted(match.key_type.value for match in matches) == sorted(kind.value for kind in KeyType)
    assert {match.app_package for match in matches} == {"com.bad.one"}
    assert {match.entry_id for match in matches} == {entry.entry_id for entry in entries}


def test_package_and_cert_needs_both_to_match() -> None:
    legit = app("com.bank.app", "legit")
    fake = app("com.bank.app", "fake")  # same name, fraudster's certificate
    matcher = Matcher.build(
        [indicator("package_and_cert", fake.signing_cert_sha256, package_name="com.bank.app")], version=1
    )
    assert matcher.match([legit], NOW) == []
    assert [match.app_package for match in matcher.match([fake], NOW)] == ["com.bank.app"]


def test_expired_future_and_revoked_entries_never_match() -> None:
    target = app("com.x.y")
    matcher = Matcher.build(
        [
            indicator("apk_sha256", target.apk_sha256, valid_until=NOW, source="expired"),
            indicator("apk_sha256", target.apk_sha256, valid_from=NOW + 1, source="future"),
            indicator("apk_sha256", target.apk_sha256, revoked=True, source="revoked"),
        ],
        version=1,
    )
    assert matcher.match([target], NOW) == []
    assert [match.source for match in matcher.match([target], NOW + 2)] == ["future"]


def test_one_key_from_two_sources_reports_both() -> None:
    target = app("com.x.y")
    matcher = Matcher.build(
        [indicator("apk_sha256", target.apk_sha256, source=name) for name in ("kisa", "vendor")], version=3
    )
    assert sorted(match.source for match in matcher.match([target], NOW)) == ["kisa", "vendor"]
    assert matcher.version == 3


def test_changes_shadow_the_base_without_touching_it() -> None:
    first, second = app("com.first.app"), app("com.second.app")
    listed = indicator("apk_sha256", first.apk_sha256)
    base = Matcher.build([listed], version=1)
    revoked = base.with_changes([listed.revoke("false positive")], version=2)
    added = revoked.with_changes([indicator("package_name", "com.second.app", category=Category.SPYWARE)], version=3)
    assert [match.app_package for match in base.match([first, second], NOW)] == ["com.first.app"]
    assert revoked.match([first, second], NOW) == []
    assert [(match.app_package, match.category) for match in added.match([first, second], NOW)] == [
        ("com.second.app", Category.SPYWARE)
    ]
    assert added.overlay_size == 2
    # Re-listing a revoked entry brings it back.
    relisted = added.with_changes([listed], version=4)
    assert {match.app_package for match in relisted.match([first, second], NOW)} == {"com.first.app", "com.second.app"}


def test_apps_without_digests_do_not_match_empty_keys() -> None:
    matcher = Matcher.build([indicator("package_name", "com.some.app")], version=1)
    assert matcher.match([InstalledApp(package_name="com.other.app")], NOW) == []
    assert Matcher.empty().match([app("com.some.app")], NOW) == []


# Apps the gateway keeps (kept_bytes) are remembered by identity; the others are made for one login.
_POOL = [app(f"com.pool.app{number}")._replace(kept_bytes=300) for number in range(8)] + [
    app("com.pool.app0", "other build")._replace(kept_bytes=300),
    app("com.pool.once"),
]
# Equal apps that are other objects: what a gateway hands over once its app cache let the first go.
_COPIES = [each._replace() for each in _POOL]
_KINDS = ["apk_sha256", "cert_sha256", "cert_sha1", "package_name", "package_and_cert"]


def _listing(entry: InstalledApp, kind: str) -> Indicator:
    if kind == "package_and_cert":
        return indicator(kind, entry.signing_cert_sha256, package_name=entry.package_name)
    value = {
        "apk_sha256": entry.apk_sha256,
        "cert_sha256": entry.signing_cert_sha256,
        "cert_sha1": entry.signing_cert_sha1,
        "package_name": entry.package_name,
    }[kind]
    return indicator(kind, value)


@settings(max_examples=80, deadline=None)
@given(
    listed=st.lists(st.tuples(st.sampled_from(_POOL), st.sampled_from(_KINDS)), min_size=1, max_size=6),
    logins=st.lists(
        st.lists(st.sampled_from(_POOL + _COPIES), max_size=12, unique_by=lambda each: each.package_name),
        min_size=1,
        max_size=15,
    ),
    bound=st.sampled_from([4, 30, 65_536]),
)
def test_one_matcher_answers_a_run_of_logins_as_a_fresh_one_answers_each(
    listed: list[tuple[InstalledApp, str]], logins: list[list[InstalledApp]], bound: int
) -> None:
    """The apps an index remembers as cleared never hide a match, whatever came before, the bound or the copies."""
    entries = {listing.entry_id: listing for listing in (_listing(entry, kind) for entry, kind in listed)}
    shared = Matcher.build(entries.values(), version=1)
    original = matcher_module.REMEMBERED_CLEARED_APPS
    matcher_module.REMEMBERED_CLEARED_APPS = bound
    try:
        for apps in logins + logins:  # the second round meets only apps seen before
            fresh = Matcher.build(entries.values(), version=1)
            assert shared.match(apps, NOW) == fresh.match(apps, NOW)
    finally:
        matcher_module.REMEMBERED_CLEARED_APPS = original


def test_only_kept_apps_are_remembered_and_never_beyond_a_bound_counted_in_bytes() -> None:
    """Apps made for one login are never held; kept ones at most REMEMBERED_CLEARED_BYTES of them."""
    cleared = matcher_module._ClearedApps()
    once = [app(f"com.once.app{number}") for number in range(50)]
    cleared.remember(once)
    assert cleared.unseen(once) == once
    third = matcher_module.REMEMBERED_CLEARED_BYTES // 3
    big = [app(f"com.big.app{number}")._replace(kept_bytes=third) for number in range(4)]
    for each in big:
        cleared.remember([each])
        assert cleared.unseen([each]) == []
    # The fourth went over the bound, so the memory started over with it alone.
    assert cleared.unseen(big) == big[:3]
