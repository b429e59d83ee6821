"""BlocklistService end to end: a real gateway, a real client, and CheckLogin seeing every change."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.timestamp_pb2 import Timestamp

from blocklists.bundle import (
    digest_entries,
    encode_entry,
    header_line,
    make_manifest,
    public_key_pem,
    sign_manifest,
)
from blocklists.entry import make_indicator
from gateway.client import MtsgClient, field_violations, request_id_of
from gateway.generated.mtsg.v1 import blocklist_pb2, blocklist_service_pb2, common_pb2, telemetry_pb2
from gateway.server.start import RunningGateway
from tests.helpers import app, telemetry

EVIL_APK = hashlib.sha256(b"evil apk").hexdigest()


def evil_entry(**fields: object) -> blocklist_pb2.BlocklistEntry:
    values: dict[str, object] = {
        "key_type": blocklist_pb2.BLOCKLIST_KEY_TYPE_APK_SHA256,
        "value": EVIL_APK.upper(),
        "category": blocklist_pb2.THREAT_CATEGORY_VOICE_PHISHING,
        "family": "FakeCall",
        "source": "kisa",
        **fields,
    }
    return blocklist_pb2.BlocklistEntry(**values)  # type: ignore[arg-type]


def victim_login() -> telemetry_pb2.LoginTelemetry:
    return telemetry(installed_apps=[app("com.kb.bank"), app("com.fake.call", label="Call", apk_sha256=EVIL_APK)])


async def test_added_entry_freezes_and_revoked_entry_releases(client: MtsgClient) -> None:
    before = await client.check_login(victim_login())
    assert before.action == common_pb2.ACTION_ALLOW

    added = await client.blocklist.AddEntry(blocklist_service_pb2.AddEntryRequest(entry=evil_entry()), timeout=10)
    assert added.entry.value == EVIL_APK  # normalised
    assert added.entry.created_by.startswith("anonymous (insecure) from ipv4:127.0.0.1:")

    frozen = await client.check_login(victim_login())
    assert frozen.action == common_pb2.ACTION_FREEZE
    assert frozen.scenario_id == "malicious-app"
    assert frozen.blocklist_version == "1"
    reason = next(reason for reason in frozen.reasons if reason.code == "MALICIOUS_APP_VOICE_PHISHING")
    assert "FakeCall" in reason.message and "com.fake.call" in reason.message
    assert reason.evidence["sources"] == "kisa"

    await client.blocklist.RevokeEntry(
        blocklist_service_pb2.RevokeEntryRequest(entry_id=added.entry.entry_id, reason="false positive"), timeout=10
    )
    after = await client.check_login(victim_login())
    assert after.action == common_pb2.ACTION_ALLOW
    assert after.blocklist_version == "2"


async def test_add_is_idempotent_by_request_id_and_refuses_active_duplicates(client: MtsgClient) -> None:
    request = blocklist_service_pb2.AddEntryRequest(request_id="add-1", entry=evil_entry())
    first = await client.blocklist.AddEntry(request, timeout=10)
    again = await client.blocklist.AddEntry(request, timeout=10)
    assert again.entry == first.entry
    with pytest.raises(grpc.aio.AioRpcError) as duplicate:
        await client.blocklist.AddEntry(blocklist_service_pb2.AddEntryRequest(entry=evil_entry()), timeout=10)
    assert duplicate.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        other = blocklist_service_pb2.AddEntryRequest(request_id="add-1", entry=evil_entry(family="Other"))
        await client.blocklist.AddEntry(other, timeout=10)
    assert reused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(reused.value)[0][0] == "request_id"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"value": "abc"}, "entry.value"),
        ({"value": EVIL_APK[:40]}, "entry.value"),
        ({"key_type": 0}, "entry.key_type"),
        ({"category": 0}, "entry.category"),
        ({"category": 99}, "entry.category"),
        ({"confidence": 500}, "entry.confidence"),
        ({"source": "x" * 5000}, "entry.source"),
        ({"revoked": True}, "entry.revoked"),
        ({"key_type": blocklist_pb2.BLOCKLIST_KEY_TYPE_PACKAGE_AND_CERT}, "entry.package_name"),
        ({"valid_until": Timestamp(seconds=int(time.time()) - 60)}, "entry.valid_until"),
    ],
)
async def test_bad_entries_get_field_violations_and_change_nothing(
    client: MtsgClient, fields: dict[str, object], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.blocklist.AddEntry(blocklist_service_pb2.AddEntryRequest(entry=evil_entry(**fields)), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [name for name, _ in field_violations(caught.value)]
    status = await client.blocklist.GetStatus(blocklist_service_pb2.GetStatusRequest(), timeout=10)
    assert status.version == "0" and status.active_count == 0


async def test_revoke_needs_a_reason_and_an_existing_entry(client: MtsgClient) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as no_reason:
        await client.blocklist.RevokeEntry(blocklist_service_pb2.RevokeEntryRequest(entry_id="bl_x"), timeout=10)
    assert [name for name, _ in field_violations(no_reason.value)] == ["reason"]
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await client.blocklist.RevokeEntry(
            blocklist_service_pb2.RevokeEntryRequest(entry_id="bl_missing", reason="x"), timeout=10
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_text_postgresql_cannot_store_is_the_callers_mistake_on_every_backend(client: MtsgClient) -> None:
    """A NUL in an id or a reason is refused as INVALID_ARGUMENT; PostgreSQL itself would fail the call."""
    added = await client.blocklist.AddEntry(blocklist_service_pb2.AddEntryRequest(entry=evil_entry()), timeout=10)
    entry_id = added.entry.entry_id
    calls = {
        "entry_id": client.blocklist.GetEntry(blocklist_service_pb2.GetEntryRequest(entry_id="bl_\x00"), timeout=10),
        "reason": client.blocklist.RevokeEntry(
            blocklist_service_pb2.RevokeEntryRequest(entry_id=entry_id, reason="feed says so\x00"), timeout=10
        ),
    }
    for field, call in calls.items():
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [name for name, _ in field_violations(refused.value)] == [field]
    still = await client.blocklist.GetEntry(blocklist_service_pb2.GetEntryRequest(entry_id=entry_id), timeout=10)
    assert not still.entry.revoked
    revoked = await client.blocklist.RevokeEntry(
        blocklist_service_pb2.RevokeEntryRequest(entry_id=entry_id, reason="feed withdrew it\nticket SEC-12"),
        timeout=10,
    )
    assert revoked.entry.revoked  # a line break in a reason is fine


async def test_list_filters_postgresql_cannot_hold_are_refused_naming_each(client: MtsgClient) -> None:
    nul_token = base64.urlsafe_b64encode(b"bl_\x00").decode()
    request = blocklist_service_pb2.ListEntriesRequest(source="kisa\x00", text="\x00", page_token=nul_token)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.blocklist.ListEntries(request, timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in field_violations(refused.value)] == ["source", "text", "page_token"]


async def test_a_huge_id_is_refused_as_the_callers_mistake(client: MtsgClient) -> None:
    """Not looked up, and not quoted back whole: errors travel in trailers that clients cap at 8-16 KB."""
    huge_id = "bl_" + "x" * 100_000
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.blocklist.GetEntry(blocklist_service_pb2.GetEntryRequest(entry_id=huge_id), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(refused.value) == [("entry_id", "must be at most 128 characters, got 100003")]
    assert request_id_of(refused.value)


async def test_list_pages_and_filters(client: MtsgClient) -> None:
    for number in range(5):
        await client.blocklist.AddEntry(
            blocklist_service_pb2.AddEntryRequest(
                entry=evil_entry(
                    key_type=blocklist_pb2.BLOCKLIST_KEY_TYPE_PACKAGE_NAME,
                    value=f"com.evil.app{number}",
                    category=blocklist_pb2.THREAT_CATEGORY_SPYWARE
                    if number % 2
                    else blocklist_pb2.THREAT_CATEGORY_DROPPER,
                )
            ),
            timeout=10,
        )
    seen, token = [], ""
    while True:
        page = await client.blocklist.ListEntries(
            blocklist_service_pb2.ListEntriesRequest(page_size=2, page_token=token), timeout=10
        )
        seen += [entry.value for entry in page.entries]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == [f"com.evil.app{number}" for number in range(5)]
    spyware = await client.blocklist.ListEntries(
        blocklist_service_pb2.ListEntriesRequest(category=blocklist_pb2.THREAT_CATEGORY_SPYWARE), timeout=10
    )
    assert sorted(entry.value for entry in spyware.entries) == ["com.evil.app1", "com.evil.app3"]
    text = await client.blocklist.ListEntries(blocklist_service_pb2.ListEntriesRequest(text="app4"), timeout=10)
    assert [entry.value for entry in text.entries] == ["com.evil.app4"]
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await client.blocklist.ListEntries(
            blocklist_service_pb2.ListEntriesRequest(page_size=5000, page_token="%%%"), timeout=10
        )
    assert sorted(name for name, _ in field_violations(bad.value)) == ["page_size", "page_token"]
    status = await client.blocklist.GetStatus(blocklist_service_pb2.GetStatusRequest(), timeout=10)
    assert status.active_count == 5
    assert {(count.category, count.count) for count in status.by_category} == {
        (blocklist_pb2.THREAT_CATEGORY_SPYWARE, 2),
        (blocklist_pb2.THREAT_CATEGORY_DROPPER, 3),
    }


def signed_bundle(key: Ed25519PrivateKey, version: int, entries: list[bytes], expires_in: float = 3600) -> bytes:
    count, sha = digest_entries(entries)
    now = time.time()
    manifest = make_manifest(
        publisher="kisa",
        bundle_version=version,
        issued_at=now - 60,
        expires_at=now + expires_in,
        entry_count=count,
        entries_sha256=sha,
    )
    return header_line(manifest, [sign_manifest(manifest, key)]) + b"".join(entries)


async def test_signed_bundles_apply_once_and_refuse_tampering_and_rollback(
    gateway: RunningGateway, client: MtsgClient
) -> None:
    key = Ed25519PrivateKey.generate()
    keys_dir = gateway.config.trusted_keys_dir
    keys_dir.mkdir(parents=True, exist_ok=True)
    (keys_dir / "kisa.pub").write_bytes(public_key_pem(key.public_key()))
    entries = [
        encode_entry(make_indicator(key_type="apk_sha256", value=EVIL_APK, category="banker_trojan", source="kisa")),
        encode_entry(make_indicator(key_type="package_name", value="com.evil.one", category="stalkerware")),
    ]
    bundle = signed_bundle(key, 2, entries)

    async def send(data: bytes) -> blocklist_service_pb2.ImportBundleResponse:
        return await client.blocklist.ImportBundle(blocklist_service_pb2.ImportBundleRequest(bundle=data), timeout=30)

    imported = await send(bundle)
    assert (imported.bundle_version, imported.added_count) == (2, 2)
    assert (await client.check_login(victim_login())).action == common_pb2.ACTION_FREEZE
    again = await send(bundle)
    assert (again.bundle_version, again.added_count) == (2, 0)

    failures = {
        "tampered": (bundle.replace(b"banker_trojan", b"spyware"), grpc.StatusCode.INVALID_ARGUMENT),
        "truncated": (bundle[: bundle.rindex(b"\n", 0, -1) + 1], grpc.StatusCode.INVALID_ARGUMENT),
        "unknown key": (signed_bundle(Ed25519PrivateKey.generate(), 3, entries), grpc.StatusCode.INVALID_ARGUMENT),
        "rollback": (signed_bundle(key, 1, entries), grpc.StatusCode.FAILED_PRECONDITION),
        "fork": (signed_bundle(key, 2, entries[:1]), grpc.StatusCode.FAILED_PRECONDITION),
        "expired": (signed_bundle(key, 5, entries, expires_in=-1), grpc.StatusCode.FAILED_PRECONDITION),
        "empty": (b"", grpc.StatusCode.INVALID_ARGUMENT),
        "nested too deeply": (b"[" * 100_000 + b"]" * 100_000 + b"\n", grpc.StatusCode.INVALID_ARGUMENT),
    }
    for name, (data, code) in failures.items():
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await send(data)
        assert caught.value.code() == code, name
    status = await client.blocklist.GetStatus(blocklist_service_pb2.GetStatusRequest(), timeout=10)
    assert (status.version, status.active_count) == ("1", 2)
    assert status.HasField("last_import_at")

    export = await client.blocklist.ExportBundle(blocklist_service_pb2.ExportBundleRequest(), timeout=10)
    assert sorted(export.bundle.splitlines(keepends=True)[1:]) == sorted(entries)


async def test_changes_from_another_process_are_live_within_a_second_with_no_failed_login(
    gateway: RunningGateway, client: MtsgClient
) -> None:
    """A second store handle stands for `mtsg blocklist add` on the host or another replica."""
    from gateway.store import open_store

    other = await open_store(gateway.config.store.url, gateway.config.data_dir)
    stop = asyncio.Event()
    failures: list[BaseException] = []
    answers: list[int] = []

    async def keep_logging_in() -> None:
        while not stop.is_set():
            try:
                answers.append((await client.check_login(victim_login())).action)
            except grpc.aio.AioRpcError as error:
                failures.append(error)

    traffic = asyncio.create_task(keep_logging_in())
    try:
        await asyncio.sleep(0.2)
        await other.blocklist.add_entry(
            make_indicator(key_type="apk_sha256", value=EVIL_APK, category="remote_control"), "test", time.time()
        )
        changed_at = time.monotonic()
        while (await client.check_login(victim_login())).action != common_pb2.ACTION_FREEZE:
            assert time.monotonic() - changed_at < 1.0, "the change was not live within one second"
            await asyncio.sleep(0.02)
        # Until the steady traffic sees it too; no longer: past 100 FREEZEs a minute the safety
        # valve trips and degrades them to STEP_UP (a fast gateway got there within 0.2 s).
        while not answers or answers[-1] != common_pb2.ACTION_FREEZE:
            assert time.monotonic() - changed_at < 1.0, "the steady traffic did not see the change"
            await asyncio.sleep(0.005)
    finally:
        stop.set()
        await traffic
        await other.close()
    assert failures == []
    assert common_pb2.ACTION_ALLOW in answers and answers[-1] == common_pb2.ACTION_FREEZE
