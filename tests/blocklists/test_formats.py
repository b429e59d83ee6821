"""Feed formats: CSV, STIX 2.1 and stalkerware-indicators, with the edge cases feeds really have."""

from __future__ import annotations

import io
from collections.abc import Mapping

import pytest

from blocklists.bundle import BundleError, decode_entry, read_header
from blocklists.entry import Category, EntrySeverity, KeyType, make_indicator
from blocklists.formats import FeedFormatError, ReadStats
from blocklists.formats.csv_rows import read_csv, write_csv
from blocklists.formats.stalkerware import SOURCE, read_ioc_yaml, read_samples_csv
from blocklists.formats.stix import read_stix, write_stix

SHA256 = "ab" * 32
SHA1 = "cd" * 20


def csv_lines(text: str) -> io.StringIO:
    return io.StringIO(text, newline="")


# --- CSV ------------------------------------------------------------------------------


def test_csv_reads_minimal_and_full_rows() -> None:
    text = (
        "key_type,value,category,severity,family,valid_until,revoked,source\n"
        f"apk_sha256,{SHA256.upper()},voice_phishing,critical,SpyNote,2030-01-01T00:00:00Z,false,\n"
        f"cert_sha1,{':'.join(SHA1[i : i + 2] for i in range(0, 40, 2))},stalkerware,,,,true,vendor\n"
        "\n"
    )
    first, second = list(read_csv(csv_lines(text), default_source="import-1"))
    assert (first.value, first.severity, first.family, first.source) == (
        SHA256,
        EntrySeverity.CRITICAL,
        "SpyNote",
        "import-1",
    )
    assert first.valid_until == 1_893_456_000.0
    assert (second.value, second.revoked, second.source, second.severity) == (SHA1, True, "vendor", EntrySeverity.HIGH)


@pytest.mark.parametrize(
    ("text", "where", "says"),
    [
        ("", "line 1", "header"),
        ("value,category\n", "line 1", "key_type"),
        ("key_type,value,category,valid_untill\n", "line 1", "valid_untill"),
        (f"key_type,value,category\napk_sha256,{SHA256},spyware\napk_sha256,{SHA1},spyware\n", "line 3", "64 hex"),
        (f"key_type,value,category\napk_sha256,{SHA256}\n", "line 2", "expected 3 cells"),
        (f'key_type,value,category\napk_sha256,"{SHA256},spyware\n', "line", "CSV"),
        (f"key_type,value,category,confidence\napk_sha256,{SHA256},spyware,high\n", "line 2", "confidence"),
        (f"key_type,value,category,revoked\napk_sha256,{SHA256},spyware,maybe\n", "line 2", "revoked"),
        (f"key_type,value,category,family\napk_sha256,{SHA256},spyware,fam\x00ily\n", "line 2", "control characters"),
    ],
)
def test_csv_errors_name_the_line(text: str, where: str, says: str) -> None:
    with pytest.raises(FeedFormatError) as caught:
        list(read_csv(csv_lines(text), default_source="x"))
    assert caught.value.location.startswith(where)
    assert says in str(caught.value)


def test_csv_round_trip() -> None:
    originals = [
        make_indicator(key_type="package_and_cert", value=SHA256, package_name="com.a.b", category="fake_bank_app"),
        make_indicator(
            key_type="package_name",
            value="com.evil.x",
            category="dropper",
            family='Fam, "with" commas',
            valid_from=1_700_000_000.0,
            revoked=True,
            revoke_reason="line\nbreak",
        ),
    ]
    text = "".join(write_csv(originals))
    assert list(read_csv(csv_lines(text), default_source="unused")) == originals


# --- STIX ------------------------------------------------------------------------------


def stix_bundle(*objects: Mapping[str, object]) -> dict[str, object]:
    return {"type": "bundle", "id": "bundle--1", "objects": list(objects)}


def stix_indicator(number: int, pattern: str, **extra: object) -> dict[str, object]:
    return {"type": "indicator", "id": f"indicator--{number}", "pattern": pattern, "pattern_type": "stix", **extra}


def test_stix_reads_the_mvt_forms_families_and_validity() -> None:
    document = stix_bundle(
        {"type": "malware", "id": "malware--1", "name": "SpyNote", "malware_types": ["remote-access-trojan"]},
        stix_indicator(1, "[app:id = 'com.spy.note']"),
        stix_indicator(2, f"[app:cert.sha256 = '{SHA256.upper()}']"),
        stix_indicator(3, f"[app:cert.sha1 = '{SHA1}']", revoked=True),
        stix_indicator(4, f"[file:hashes.'SHA-256' = '{SHA256}']", valid_until="2030-01-01T00:00:00Z"),
        stix_indicator(5, f"[file:hashes.sha256 = '{SHA256}'] OR [app:id = 'com.other.app']"),
        stix_indicator(
            6, f"[app:id = 'com.bank.fake' AND app:cert.sha256 = '{SHA256}']", x_mtsg_category="fake_bank_app"
        ),
        stix_indicator(7, "[domain-name:value = 'evil.example']"),
        *(
            {
                "type": "relationship",
                "id": f"relationship--{n}",
                "relationship_type": "indicates",
                "source_ref": f"indicator--{n}",
                "target_ref": "malware--1",
            }
            for n in (1, 2, 3, 4, 5)
        ),
    )
    stats = ReadStats()
    read = list(read_stix(document, default_source="kisa", default_category=None, stats=stats))
    assert [(item.key_type, item.category) for item in read] == [
        (KeyType.PACKAGE_NAME, Category.REMOTE_CONTROL),
        (KeyType.CERT_SHA256, Category.REMOTE_CONTROL),
        (KeyType.CERT_SHA1, Category.REMOTE_CONTROL),
        (KeyType.APK_SHA256, Category.REMOTE_CONTROL),
        (KeyType.APK_SHA256, Category.REMOTE_CONTROL),
        (KeyType.PACKAGE_NAME, Category.REMOTE_CONTROL),
        (KeyType.PACKAGE_AND_CERT, Category.FAKE_BANK_APP),
    ]
    assert read[0].family == "SpyNote" and read[0].source == "kisa" and read[0].source_reference == "indicator--1"
    assert read[1].value == SHA256
    assert read[2].revoked is True
    assert read[3].valid_until == 1_893_456_000.0
    assert read[6].package_name == "com.bank.fake"
    assert stats.skipped == 1 and stats.reasons == {"pattern not about apps": 1}


@pytest.mark.parametrize(
    ("document", "where", "says"),
    [
        ({"type": "not-a-bundle"}, "document", "bundle"),
        ({"type": "bundle", "id": "b"}, "document", "objects"),
        (stix_bundle({"type": "indicator"}), "object 1", "id"),
        (stix_bundle(stix_indicator(1, "[app:id = 'com.x.y'")), "object 1", "unbalanced"),
        (stix_bundle(stix_indicator(1, "app:id = 'com.x.y'")), "object 1", "inside"),
        (stix_bundle(stix_indicator(1, "[app:id = 'com.x.y' AND app:cert.sha1 = 'ab']")), "object 1", "AND"),
        (
            stix_bundle(stix_indicator(1, f"[file:hashes.sha256 = '{SHA1}']", x_mtsg_category="spyware")),
            "object 1",
            "64 hex",
        ),
        (stix_bundle(stix_indicator(1, "[app:id = 'com.x.y']")), "object 1", "default category"),
        (
            stix_bundle(stix_indicator(1, "[app:id = 'com.x.y']", valid_from="yesterday", x_mtsg_category="spyware")),
            "object 1",
            "RFC 3339",
        ),
    ],
)
def test_stix_errors_name_the_object(document: dict[str, object], where: str, says: str) -> None:
    with pytest.raises(FeedFormatError) as caught:
        list(read_stix(document, default_source="s", default_category=None))
    assert caught.value.location.startswith(where)
    assert says in str(caught.value)


def test_stix_export_reads_back_the_same() -> None:
    originals = [
        make_indicator(
            key_type=kind,
            value=value,
            category=category,
            family=family,
            package_name=package,
            source="kisa",
            source_reference="ref-1",
            confidence=70,
            severity="critical",
            valid_until=1_900_000_000.0,
        )
        for kind, value, category, family, package in (
            ("apk_sha256", SHA256, "banker_trojan", "Anatsa", ""),
            ("cert_sha1", SHA1, "banker_trojan", "Anatsa", ""),
            ("package_name", "com.x.y", "voice_phishing", "", ""),
            ("package_and_cert", SHA256, "fake_bank_app", "FakeBank", "com.bank.app"),
        )
    ]
    document = write_stix(originals, created_at=1_800_000_000.0)
    assert sum(item["type"] == "malware" for item in document["objects"]) == 2
    assert list(read_stix(document, default_source="other", default_category=None)) == originals


# --- stalkerware-indicators --------------------------------------------------------------

IOC_YAML = f"""
- name: TheTruthSpy
  names: [Copy9, MxSpy]
  type: stalkerware
  packages:
  - com.apspy.app
  - com.mxspy
  certificates:
  - {SHA1.upper()}
  websites:
  - thetruthspy.com
  c2:
    ips: [69.64.74.239]
    domains: [copy9.com, mxspy.com]
- name: Life360
  type: watchware
  packages: [com.life360.android.safetymapd]
"""


def test_ioc_yaml_keeps_attribution_and_counts_network_indicators() -> None:
    stats = ReadStats()
    read = list(read_ioc_yaml(IOC_YAML, stats))
    assert [(item.key_type, item.value) for item in read] == [
        (KeyType.PACKAGE_NAME, "com.apspy.app"),
        (KeyType.PACKAGE_NAME, "com.mxspy"),
        (KeyType.CERT_SHA1, SHA1),
        (KeyType.PACKAGE_NAME, "com.life360.android.safetymapd"),
    ]
    assert {item.source for item in read} == {SOURCE}
    assert read[0].family == "TheTruthSpy" and "ioc.yaml#TheTruthSpy" in read[0].source_reference
    assert read[3].severity is EntrySeverity.MEDIUM  # watchware
    assert stats.skipped == 4


def test_a_package_two_apps_list_keeps_both_families_at_the_stronger_severity() -> None:
    text = """
- name: Cocospy
  type: stalkerware
  packages: [com.sc.spyier.v2, com.cocospy.app]
- name: Spyier
  type: watchware
  packages: [com.sc.spyier.v2]
"""
    stats = ReadStats()
    read = {item.value: item for item in read_ioc_yaml(text, stats)}
    shared = read["com.sc.spyier.v2"]
    assert shared.family == "Cocospy / Spyier"
    assert shared.source_reference.endswith("ioc.yaml#Cocospy / Spyier")
    assert shared.severity is EntrySeverity.HIGH  # what one app of the file says is never lowered by another
    assert read["com.cocospy.app"].family == "Cocospy"
    assert (stats.read, stats.total) == (2, 2)


def test_a_file_other_than_ioc_yaml_is_named_and_is_a_source_of_its_own() -> None:
    (read,) = read_ioc_yaml(
        "- name: Life360\n  type: watchware\n  packages: [com.life360.x]\n", file_name="watchware.yaml"
    )
    assert read.source == f"{SOURCE}/watchware"
    assert " watchware.yaml#Life360" in read.source_reference
    assert read.severity is EntrySeverity.MEDIUM


def test_many_apps_listing_one_package_are_named_within_the_text_limit() -> None:
    apps = "".join(f"- name: {'App' + str(n) * 30}\n  packages: [com.shared.pkg]\n" for n in range(100))
    (read,) = read_ioc_yaml(apps)
    assert len(read.family) <= 1000 and read.family.endswith(" more")
    assert len(read.source_reference) <= 1000


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("- name: [unclosed", "YAML"),
        ("name: not-a-list", "list of apps"),
        ("- packages: [com.a.b]", "name"),
        ("- name: X\n  packages: com.a.b", "list of strings"),
        ("- name: X\n  certificates: [ABC]", "40 hex"),
    ],
)
def test_ioc_yaml_errors(text: str, says: str) -> None:
    with pytest.raises(FeedFormatError, match=says):
        list(read_ioc_yaml(text))


def test_samples_csv_reads_apk_hashes_and_refuses_truncated_rows() -> None:
    text = (
        "SHA256,Package Name,Certificate,Version,App\n"
        f"{SHA256},com.topspy,{SHA1.upper()},9,1TopSpy\n"
        f"{'ef' * 32},,,,AllTracker\n"
    )
    read = list(read_samples_csv(csv_lines(text)))
    assert [(item.value, item.family) for item in read] == [(SHA256, "1TopSpy"), ("ef" * 32, "AllTracker")]
    with pytest.raises(FeedFormatError, match="line 4: expected 5 cells"):
        list(read_samples_csv(csv_lines(text + f"{'ef' * 31},x\n")))
    with pytest.raises(FeedFormatError, match="line 3: value"):
        list(read_samples_csv(csv_lines(text[: text.rindex("\n", 0, -1)] + "\n" + "ef" * 20 + ",,,,X\n")))


DEEP = 100_000  # far past any parser's recursion limit


def test_feeds_nested_too_deeply_are_refused_as_feeds_not_crashes() -> None:
    """A poisoned feed nested thousands deep is a bad feed, not a RecursionError out of the import."""
    with pytest.raises(FeedFormatError, match="nested too deeply"):
        list(read_ioc_yaml("[" * DEEP + "]" * DEEP))
    with pytest.raises(FeedFormatError, match="nested too deeply"):
        decode_entry(("[" * DEEP + "]" * DEEP).encode(), 2)
    with pytest.raises(BundleError, match="not a bundle header"):
        read_header(("[" * DEEP + "]" * DEEP).encode())


@pytest.mark.parametrize("line", [b"", b"\n", b"  \r\n"])
def test_an_empty_bundle_is_called_empty(line: bytes) -> None:
    """An empty download or file: the operator is told so, not that line 1 is not JSON."""
    with pytest.raises(BundleError, match="the bundle is empty"):
        read_header(line)
