"""Signed bundles: every way a bundle can be wrong is refused before anything is applied."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from blocklists.bundle import (
    AppliedBundle,
    BundleError,
    Manifest,
    Signature,
    check_entries,
    check_freshness,
    decode_entry,
    digest_entries,
    encode_entry,
    header_line,
    key_id,
    load_private_key,
    load_public_key,
    make_manifest,
    parse_header,
    private_key_pem,
    public_key_pem,
    sign_manifest,
    verify_signatures,
)
from blocklists.entry import make_indicator
from blocklists.formats import FeedFormatError

NOW = 1_800_000_000.0
DAY = 86_400.0
PUBLISHER_KEY = Ed25519PrivateKey.generate()
TRUSTED = {key_id(PUBLISHER_KEY.public_key()): PUBLISHER_KEY.public_key()}
ENTRIES = [
    make_indicator(key_type="apk_sha256", value="ab" * 32, category="voice_phishing", family="Fake", valid_until=NOW),
    make_indicator(key_type="package_and_cert", value="cd" * 32, package_name="com.a.b", category="fake_bank_app"),
    make_indicator(key_type="cert_sha1", value="ef" * 20, category="stalkerware", revoked=True, revoke_reason="fp"),
]


def signed(version: int = 2, entries: list[bytes] | None = None, key: Ed25519PrivateKey = PUBLISHER_KEY) -> bytes:
    lines = entries if entries is not None else [encode_entry(entry) for entry in ENTRIES]
    count, sha = digest_entries(lines)
    manifest = make_manifest(
        publisher="kisa",
        bundle_version=version,
        issued_at=NOW,
        expires_at=NOW + DAY,
        entry_count=count,
        entries_sha256=sha,
    )
    return header_line(manifest, [sign_manifest(manifest, key)]) + b"".join(lines)


def open_bundle(data: bytes, trusted: dict = TRUSTED, previous: AppliedBundle | None = None) -> list:
    """The order the gateway checks in."""
    header, *lines = data.splitlines(keepends=True)
    manifest, signatures = parse_header(header)
    verify_signatures(manifest, signatures, trusted)
    check_freshness(manifest, previous, NOW)
    check_entries(manifest, *digest_entries(lines))
    return [decode_entry(line, number) for number, line in enumerate(lines, start=2)]


def test_a_good_bundle_round_trips() -> None:
    assert open_bundle(signed()) == ENTRIES


def test_keys_survive_pem_and_ids_are_stable() -> None:
    private = load_private_key(private_key_pem(PUBLISHER_KEY))
    public = load_public_key(public_key_pem(PUBLISHER_KEY.public_key()))
    assert key_id(private.public_key()) == key_id(public) == next(iter(TRUSTED))
    with pytest.raises(BundleError, match="PEM"):
        load_public_key(b"not a key")


def test_a_changed_entry_is_refused() -> None:
    tampered = signed().replace(b"voice_phishing", b"spyware")
    with pytest.raises(BundleError, match="do not match the signed digest"):
        open_bundle(tampered)


def test_a_truncated_bundle_is_refused() -> None:
    data = signed()
    with pytest.raises(BundleError, match="promises 3 entries"):
        open_bundle(data[: data.rindex(b"\n", 0, -1) + 1])


def test_a_changed_manifest_breaks_the_signature() -> None:
    header, rest = signed().split(b"\n", 1)
    document = json.loads(header)
    document["manifest"]["expires"] = "2099-01-01T00:00:00.000Z"
    with pytest.raises(BundleError, match="bad signature"):
        open_bundle(json.dumps(document).encode() + b"\n" + rest)


def test_unknown_key_and_no_keys_are_refused() -> None:
    with pytest.raises(BundleError, match="unknown key"):
        open_bundle(signed(key=Ed25519PrivateKey.generate()))
    with pytest.raises(BundleError, match="no trusted publisher keys"):
        open_bundle(signed(), trusted={})


def test_rotation_one_trusted_signature_is_enough() -> None:
    data = signed()
    header, rest = data.split(b"\n", 1)
    document = json.loads(header)
    manifest = Manifest(**document["manifest"])
    new_key = Ed25519PrivateKey.generate()
    document["signatures"].append(
        {"keyid": key_id(new_key.public_key()), "signature": sign_manifest(manifest, new_key).signature}
    )
    rotated = json.dumps(document).encode() + b"\n" + rest
    assert open_bundle(rotated) == ENTRIES
    assert open_bundle(rotated, trusted={key_id(new_key.public_key()): new_key.public_key()}) == ENTRIES


def test_signature_that_is_not_base64_is_bad() -> None:
    manifest = make_manifest(
        publisher="p", bundle_version=1, issued_at=NOW, expires_at=NOW + 1, entry_count=0, entries_sha256=""
    )
    with pytest.raises(BundleError, match="bad signature"):
        verify_signatures(manifest, [Signature(next(iter(TRUSTED)), "%%%")], TRUSTED)


@pytest.mark.parametrize(
    ("previous", "now", "says"),
    [
        (None, NOW + DAY, "expired"),
        (AppliedBundle(3, "x"), NOW, "older than the applied version 3"),
        (AppliedBundle(2, "different"), NOW, "already applied with different contents"),
    ],
)
def test_stale_replayed_and_forked_bundles_are_refused(previous: AppliedBundle | None, now: float, says: str) -> None:
    manifest, _ = parse_header(signed().split(b"\n", 1)[0] + b"\n")
    with pytest.raises(BundleError, match=says):
        check_freshness(manifest, previous, now)


def test_the_same_bundle_again_is_a_no_op_and_a_newer_one_applies() -> None:
    manifest, _ = parse_header(signed().split(b"\n", 1)[0])
    assert check_freshness(manifest, AppliedBundle(2, manifest.entries_sha256), NOW) is False
    assert check_freshness(manifest, AppliedBundle(1, "older"), NOW) is True


@pytest.mark.parametrize(
    ("header", "says"),
    [
        (b"garbage", "not JSON"),
        (b'{"mtsg_bundle": 9}', "format 1"),
        (b'{"mtsg_bundle": 1, "manifest": null, "signatures": []}', "not signed yet"),
        (b'{"mtsg_bundle": 1, "manifest": {"publisher": "x"}, "signatures": []}', "malformed"),
    ],
)
def test_bad_headers(header: bytes, says: str) -> None:
    with pytest.raises(BundleError, match=says):
        parse_header(header)


def test_manifest_field_types_are_checked() -> None:
    manifest = make_manifest(
        publisher="p", bundle_version=1, issued_at=NOW, expires_at=NOW + 1, entry_count=0, entries_sha256=""
    )
    bad = header_line(replace(manifest, bundle_version="7"), [])  # type: ignore[arg-type]
    with pytest.raises(BundleError, match="bundle_version must be int"):
        parse_header(bad)


def test_a_received_bundle_whose_version_the_store_cannot_keep_is_refused() -> None:
    """Before, it passed every check and the store's driver failed on it with a traceback (OverflowError)."""
    manifest = make_manifest(
        publisher="p", bundle_version=1, issued_at=NOW, expires_at=NOW + 1, entry_count=0, entries_sha256=""
    )
    with pytest.raises(BundleError, match="the bundle version must be from 1 to 9223372036854775807, got 10"):
        parse_header(header_line(replace(manifest, bundle_version=10**20), []))


def test_bad_entry_lines_name_their_line() -> None:
    with pytest.raises(FeedFormatError, match="line 5: not valid JSON"):
        decode_entry(b"{", 5)
    with pytest.raises(FeedFormatError, match="line 2: value"):
        decode_entry(b'{"key_type":"apk_sha256","value":"12","category":"spyware","source":"s"}', 2)
    with pytest.raises(FeedFormatError, match="line 3: key_type"):
        decode_entry(b'{"value":"12","category":"spyware"}', 3)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"publisher": " "}, "publisher"),
        ({"bundle_version": 0}, "version"),
        ({"bundle_version": 2**63}, "from 1 to 9223372036854775807"),
        ({"expires_at": NOW}, "expire"),
    ],
)
def test_manifest_rules(fields: dict[str, object], says: str) -> None:
    arguments: dict[str, object] = {
        "publisher": "p",
        "bundle_version": 1,
        "issued_at": NOW,
        "expires_at": NOW + 1,
        "entry_count": 0,
        "entries_sha256": "",
        **fields,
    }
    with pytest.raises(BundleError, match=says):
        make_manifest(**arguments)  # type: ignore[arg-type]


def test_signatures_are_base64_ed25519() -> None:
    _, signatures = parse_header(signed().split(b"\n", 1)[0])
    assert len(base64.b64decode(signatures[0].signature)) == 64
