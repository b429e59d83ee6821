"""The registry commands as an operator runs them, against a real ``mtsg serve``."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import time
from pathlib import Path

from gateway.client import MtsgClient
from gateway.generated.mtsg.v1 import common_pb2
from tests.helpers import again, app, telemetry
from tests.integration.conftest import ServeProcess, run_mtsg

SPY_APK = hashlib.sha256(b"spy apk").hexdigest()
SPY_CERT_SHA1 = hashlib.sha1(b"spy cert").hexdigest().upper()


def mtsg(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return run_mtsg(*arguments, cwd=tmp_path)


def store_args(tmp_path: Path) -> list[str]:
    return ["--data-dir", str(tmp_path / "d")]


def login_with(**fields: object) -> object:
    return telemetry(installed_apps=[app("com.kb.bank"), app("com.spy.app", **fields)])


async def action_of(target: str, message: object) -> int:
    async with MtsgClient(target, timeout=10) as client:
        return (await client.check_login(again(message))).action  # type: ignore[arg-type]


async def wait_for_action(target: str, message: object, wanted: int, within: float = 1.5) -> float:
    started = time.monotonic()
    while (action := await action_of(target, message)) != wanted:
        assert time.monotonic() - started < within, f"still {common_pb2.Action.Name(action)} after {within}s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_operator_adds_revokes_and_the_running_gateway_follows(serve: ServeProcess, tmp_path: Path) -> None:
    target = serve.target
    login = login_with(apk_sha256=SPY_APK)
    assert await action_of(target, login) == common_pb2.ACTION_ALLOW

    added = mtsg(
        tmp_path,
        "blocklist",
        "add",
        *store_args(tmp_path),
        "--key-type",
        "apk_sha256",
        "--value",
        SPY_APK.upper(),
        "--category",
        "banker_trojan",
        "--family",
        "Anatsa",
        "--actor",
        "analyst-kim",
    )
    assert added.returncode == 0, added.stderr
    entry_id = added.stdout.split()[0]
    await wait_for_action(target, login, common_pb2.ACTION_FREEZE)

    bad = mtsg(tmp_path, "blocklist", "revoke", *store_args(tmp_path), entry_id, "--reason", " ")
    assert bad.returncode == 2 and "--reason" in bad.stderr
    revoked = mtsg(
        tmp_path, "blocklist", "revoke", *store_args(tmp_path), entry_id, "--reason", "vendor false positive"
    )
    assert revoked.returncode == 0 and "revoked (vendor false positive)" in revoked.stdout
    await wait_for_action(target, login, common_pb2.ACTION_ALLOW)

    audit = mtsg(tmp_path, "audit", "list", *store_args(tmp_path), "--verbose")
    assert audit.returncode == 0
    lines = audit.stdout.splitlines()
    assert "revoke" in lines[0] and "add" in next(line for line in lines if line.startswith("#1 "))
    assert "analyst-kim" in audit.stdout and '"revoked": true' in audit.stdout

    missing = mtsg(tmp_path, "blocklist", "get", *store_args(tmp_path), "bl_nope")
    assert missing.returncode == 1 and "no entry bl_nope" in missing.stderr


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


async def test_feed_imports_are_all_or_nothing_and_every_format_lands(serve: ServeProcess, tmp_path: Path) -> None:
    broken = write(
        tmp_path / "broken.csv",
        f"key_type,value,category\napk_sha256,{SPY_APK},spyware\ncert_sha1,{SPY_CERT_SHA1},spyware\n"
        "apk_sha256,not-a-hash,spyware\n",
    )
    failed = mtsg(tmp_path, "blocklist", "import", *store_args(tmp_path), str(broken))
    assert failed.returncode == 1 and "line 4: value" in failed.stderr
    status = mtsg(tmp_path, "blocklist", "status", *store_args(tmp_path))
    assert "version 0, 0 active entries" in status.stdout  # nothing half-applied

    good = write(tmp_path / "kisa.csv", broken.read_text().rsplit("apk_sha256,not", 1)[0])
    imported = mtsg(tmp_path, "blocklist", "import", *store_args(tmp_path), str(good))
    assert imported.returncode == 0, imported.stderr
    assert "2 added" in imported.stdout
    await wait_for_action(serve.target, login_with(signing_cert_sha1=SPY_CERT_SHA1), common_pb2.ACTION_STEP_UP)

    ioc = write(
        tmp_path / "ioc.yaml",
        "- name: TheTruthSpy\n  type: stalkerware\n  packages: [com.thetruth]\n  websites: [thetruthspy.com]\n",
    )
    samples = write(tmp_path / "samples.csv", f"SHA256,Package Name,Certificate,Version,App\n{'ab' * 32},com.x,,1,X\n")
    stix = write(
        tmp_path / "feed.stix2",
        json.dumps(
            {
                "type": "bundle",
                "id": "bundle--1",
                "objects": [
                    {
                        "type": "indicator",
                        "id": "indicator--1",
                        "pattern": "[app:id = 'com.rat.app']",
                        "pattern_type": "stix",
                    },
                    {
                        "type": "malware",
                        "id": "malware--1",
                        "name": "SpyNote",
                        "malware_types": ["remote-access-trojan"],
                    },
                    {
                        "type": "relationship",
                        "id": "relationship--1",
                        "relationship_type": "indicates",
                        "source_ref": "indicator--1",
                        "target_ref": "malware--1",
                    },
                ],
            }
        ),
    )
    for path, expected in ((ioc, "1 added"), (samples, "1 added"), (stix, "1 added")):
        result = mtsg(tmp_path, "blocklist", "import", *store_args(tmp_path), str(path))
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout, result.stdout
    assert "1 not about apps skipped" in mtsg(tmp_path, "blocklist", "import", *store_args(tmp_path), str(ioc)).stdout
    await wait_for_action(serve.target, telemetry(installed_apps=[app("com.rat.app")]), common_pb2.ACTION_FREEZE)

    listing = mtsg(tmp_path, "blocklist", "list", *store_args(tmp_path), "--source", "stalkerware-indicators")
    assert listing.stdout.count("source stalkerware-indicators") == 2 and "ioc.yaml#TheTruthSpy" in listing.stdout

    for export_format, name in (("csv", "out.csv"), ("stix", "out.stix2"), ("bundle", "out.bundle")):
        exported = mtsg(
            tmp_path, "blocklist", "export", *store_args(tmp_path), str(tmp_path / name), "--format", export_format
        )
        assert exported.returncode == 0 and "5 entries" in exported.stdout, exported.stderr
    # An export re-imported elsewhere gives the same registry.
    other = ["--data-dir", str(tmp_path / "other")]
    for name in ("out.csv", "out.stix2"):
        again = mtsg(tmp_path, "blocklist", "import", *other, str(tmp_path / name))
        assert again.returncode == 0, again.stderr
    assert "5 active entries" in mtsg(tmp_path, "blocklist", "status", *other).stdout


def test_sign_verify_and_import_a_bundle(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    assert mtsg(tmp_path, "keys", "generate", "kisa", "--dir", str(keys)).returncode == 0
    assert (keys / "kisa.key").stat().st_mode & 0o777 == 0o600
    again = mtsg(tmp_path, "keys", "generate", "kisa", "--dir", str(keys))
    assert again.returncode == 2 and "not overwriting" in again.stderr

    source = ["--data-dir", str(tmp_path / "publisher")]
    write(tmp_path / "feed.csv", f"key_type,value,category\napk_sha256,{SPY_APK},voice_phishing\n")
    assert mtsg(tmp_path, "blocklist", "import", *source, str(tmp_path / "feed.csv")).returncode == 0
    assert mtsg(tmp_path, "blocklist", "export", *source, str(tmp_path / "unsigned.bundle")).returncode == 0
    signed = mtsg(
        tmp_path,
        "blocklist",
        "sign",
        str(tmp_path / "unsigned.bundle"),
        str(tmp_path / "v1.bundle"),
        "--key",
        str(keys / "kisa.key"),
        "--publisher",
        "kisa",
        "--bundle-version",
        "1",
    )
    assert signed.returncode == 0, signed.stderr
    sign = ["blocklist", "sign", str(tmp_path / "unsigned.bundle"), str(tmp_path / "bad.bundle")]
    publisher = ["--key", str(keys / "kisa.key"), "--publisher", "kisa"]
    for option, value, says in [
        ("--bundle-version", "9" * 20, "--bundle-version must be from 1 to 9223372036854775807"),
        ("--expires-in-days", "99999999999", "--expires-in-days must be above 0 and at most 3650"),
        ("--expires-in-days", "nan", "--expires-in-days must be above 0"),
    ]:
        version = [] if option == "--bundle-version" else ["--bundle-version", "2"]
        bad = mtsg(tmp_path, *sign, *publisher, *version, option, value)
        assert bad.returncode == 2 and says in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    assert not (tmp_path / "bad.bundle").exists()

    gateway = ["--data-dir", str(tmp_path / "gw")]
    untrusted = mtsg(tmp_path, "blocklist", "import", *gateway, str(tmp_path / "v1.bundle"))
    assert untrusted.returncode == 1 and "no trusted publisher keys" in untrusted.stderr
    (tmp_path / "gw" / "trusted-keys").mkdir(parents=True)
    (tmp_path / "gw" / "trusted-keys" / "kisa.pub").write_bytes((keys / "kisa.pub").read_bytes())
    verified = mtsg(tmp_path, "blocklist", "verify", *gateway, str(tmp_path / "v1.bundle"))
    assert verified.returncode == 0 and "valid: kisa v1, 1 entries" in verified.stdout

    tampered = tmp_path / "tampered.bundle"
    tampered.write_bytes((tmp_path / "v1.bundle").read_bytes().replace(b"voice_phishing", b"spyware"))
    refused = mtsg(tmp_path, "blocklist", "verify", *gateway, str(tampered))
    assert refused.returncode == 1 and "altered" in refused.stderr
    assert mtsg(tmp_path, "blocklist", "import", *gateway, str(tampered)).returncode == 1

    applied = mtsg(tmp_path, "blocklist", "import", *gateway, str(tmp_path / "v1.bundle"))
    assert applied.returncode == 0 and "1 added" in applied.stdout
    replayed = mtsg(tmp_path, "blocklist", "import", *gateway, str(tmp_path / "v1.bundle"))
    assert "already applied" in replayed.stdout
    assert "1 active entries" in mtsg(tmp_path, "blocklist", "status", *gateway).stdout


def test_an_export_that_cannot_be_written_says_why_and_leaves_no_partial_file(tmp_path: Path) -> None:
    """Before: a raw errno message, and `NAME.partial` left beside the target."""
    source = ["--data-dir", str(tmp_path / "publisher")]
    write(tmp_path / "feed.csv", f"key_type,value,category\napk_sha256,{SPY_APK},voice_phishing\n")
    assert mtsg(tmp_path, "blocklist", "import", *source, str(tmp_path / "feed.csv")).returncode == 0
    (tmp_path / "taken").mkdir()

    refused = mtsg(tmp_path, "blocklist", "export", *source, "taken", "--format", "csv")

    assert refused.returncode == 1
    assert refused.stderr.strip() == "mtsg blocklist export: cannot write taken: Is a directory"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["feed.csv", "publisher", "taken"]
    assert list((tmp_path / "taken").iterdir()) == []


def test_one_file_of_a_feed_never_lowers_another_and_the_operator_is_told_what_happens(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "d")]
    ioc = write(tmp_path / "ioc.yaml", "- name: Cocospy\n  type: stalkerware\n  packages: [com.sc.spyier.v2]\n")
    watchware = write(
        tmp_path / "watchware.yaml", "- name: Spyier\n  type: watchware\n  packages: [com.sc.spyier.v2]\n"
    )
    first = mtsg(tmp_path, "blocklist", "import", *data, str(ioc))
    assert first.returncode == 0 and "1 added" in first.stdout, first.stderr
    assert "all 1 entries read; merging them into the registry..." in first.stderr  # no silent wait after 100%
    second = mtsg(tmp_path, "blocklist", "import", *data, str(watchware))
    assert second.returncode == 0 and "1 added, 0 updated" in second.stdout, second.stdout
    listing = mtsg(tmp_path, "blocklist", "list", *data).stdout
    assert "watchware.yaml#Spyier" in listing and "ioc.yaml#Cocospy" in listing
    ioc_entry = mtsg(tmp_path, "blocklist", "list", *data, "--source", "stalkerware-indicators").stdout
    assert "high" in ioc_entry and "watchware.yaml" not in ioc_entry  # still HIGH, still ioc.yaml's

    status = mtsg(tmp_path, "blocklist", "status", *data).stdout
    assert "by key type:\n  package_name" in status and "2" in status.split("by key type:")[1].split("by source")[0]

    stix = write(
        tmp_path / "plain.stix2",
        json.dumps(
            {
                "type": "bundle",
                "id": "bundle--2",
                "objects": [
                    {
                        "type": "indicator",
                        "id": "indicator--9",
                        "pattern": "[app:id = 'com.odd.app']",
                        "pattern_type": "stix",
                    }
                ],
            }
        ),
    )
    uncategorised = mtsg(tmp_path, "blocklist", "import", *data, str(stix))
    assert uncategorised.returncode == 1 and "--category CATEGORY" in uncategorised.stderr
    categorised = mtsg(tmp_path, "blocklist", "import", *data, str(stix), "--category", "spyware")
    assert categorised.returncode == 0 and "all 1 entries read; merging" in categorised.stderr

    unsigned_home = ["--data-dir", str(tmp_path / "keyless")]
    verify = mtsg(tmp_path, "blocklist", "verify", *unsigned_home, str(ioc))
    assert (
        verify.returncode != 0
        and f"no trusted publisher keys in {tmp_path / 'keyless' / 'trusted-keys'}" in verify.stderr
    )
