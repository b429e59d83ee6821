"""Indicator validation and normalisation: the one gate every feed passes through."""

from __future__ import annotations

import pytest

from blocklists.entry import Category, EntrySeverity, InvalidIndicatorError, KeyType, expired_by, make_indicator

SHA256 = "a" * 64
SHA1 = "b" * 40


def test_hashes_are_normalised_whatever_the_case_and_separators() -> None:
    colons = ":".join(["AB"] * 32)
    indicator = make_indicator(key_type="cert_sha256", value=colons, category="banker_trojan")
    assert indicator.value == "ab" * 32
    assert indicator.key_type is KeyType.CERT_SHA256
    assert make_indicator(key_type="CERT-SHA1", value=SHA1.upper(), category="Spyware").value == SHA1


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"key_type": "apk_sha256", "value": SHA1}, "value"),  # a SHA-1 where a SHA-256 belongs
        ({"key_type": "cert_sha1", "value": SHA256}, "value"),
        ({"key_type": "apk_sha256", "value": "z" * 64}, "value"),
        ({"key_type": "package_name", "value": "not a package"}, "value"),
        ({"key_type": "package_name", "value": ""}, "value"),
        ({"key_type": "package_name", "value": "com." + "a" * 300}, "value"),
        ({"key_type": "package_and_cert", "value": SHA256}, "package_name"),
        ({"key_type": "apk_sha256", "value": SHA256, "package_name": "com.x.y"}, "package_name"),
        ({"key_type": "md5", "value": SHA256}, "key_type"),
        ({"key_type": "apk_sha256", "value": SHA256, "category": "adware"}, "category"),
        ({"key_type": "apk_sha256", "value": SHA256, "severity": "extreme"}, "severity"),
        ({"key_type": "apk_sha256", "value": SHA256, "confidence": 101}, "confidence"),
        ({"key_type": "apk_sha256", "value": SHA256, "confidence": True}, "confidence"),
        ({"key_type": "apk_sha256", "value": SHA256, "source": "  "}, "source"),
        ({"key_type": "apk_sha256", "value": SHA256, "valid_from": 20.0, "valid_until": 10.0}, "valid_until"),
        ({"key_type": "apk_sha256", "value": SHA256, "valid_from": float("nan")}, "valid_from"),
        ({"key_type": "apk_sha256", "value": SHA256, "family": "x" * 1001}, "family"),
        ({"key_type": "apk_sha256", "value": SHA256, "family": "fam\x00ily"}, "family"),
        ({"key_type": "apk_sha256", "value": SHA256, "source": "feed\x1b[31m"}, "source"),
        ({"key_type": "apk_sha256", "value": SHA256, "revoke_reason": "gone\x7f"}, "revoke_reason"),
    ],
)
def test_bad_indicators_are_refused_naming_the_field(fields: dict[str, object], bad_field: str) -> None:
    arguments: dict[str, object] = {"category": "voice_phishing", **fields}
    with pytest.raises(InvalidIndicatorError) as caught:
        make_indicator(**arguments)  # type: ignore[arg-type]
    assert caught.value.field == bad_field


def test_entry_id_is_stable_and_separates_sources() -> None:
    one = make_indicator(key_type="apk_sha256", value=SHA256.upper(), category="dropper", source="kisa")
    again = make_indicator(key_type="apk_sha256", value=SHA256, category="spyware", source="kisa", family="X")
    other_source = make_indicator(key_type="apk_sha256", value=SHA256, category="dropper", source="manual")
    assert one.entry_id == again.entry_id  # content changes, identity does not
    assert one.entry_id != other_source.entry_id
    assert one.entry_id.startswith("bl_")


@pytest.mark.parametrize(
    ("now", "active"),
    [(99.0, False), (100.0, True), (199.9, True), (200.0, False)],
)
def test_validity_window_is_half_open(now: float, active: bool) -> None:
    indicator = make_indicator(
        key_type="package_name",
        value="com.evil.app",
        category=Category.STALKERWARE,
        severity=EntrySeverity.LOW,
        valid_from=100.0,
        valid_until=200.0,
    )
    assert indicator.is_active(now) is active
    assert indicator.revoke("false positive").is_active(now) is False


def test_line_breaks_and_tabs_are_fine_in_free_text() -> None:
    indicator = make_indicator(
        key_type="apk_sha256", value=SHA256, category="voice_phishing", revoke_reason="withdrawn\n\tSEC-12"
    )
    assert indicator.revoke_reason == "withdrawn\n\tSEC-12"


def test_an_entry_expired_by_now_is_told_apart_from_one_still_valid() -> None:
    forever = make_indicator(key_type="package_name", value="com.a", category="spyware")
    until = make_indicator(key_type="package_name", value="com.a", category="spyware", valid_until=2000.0)
    assert not expired_by(forever, 10**10)
    assert not expired_by(until, 1999.0)
    assert expired_by(until, 2000.0) and expired_by(until, 2001.0)
