"""CheckLogin's guards on a real gateway: replays, stale telemetry, floods, a store that does not answer,
calls past the in-flight limit, and the FREEZE safety valve."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from gateway.client import MtsgClient, error_reason, field_violations, request_id_of
from gateway.generated.mtsg.v1 import common_pb2
from gateway.server.start import RunningGateway, start_gateway
from tests.helpers import (
    again,
    app,
    freezing_login,
    gateway_config,
    package_entry_request,
    request,
    run_mtsg,
    telemetry,
)


async def _started(tmp_path: Path, store_url: str = "", **settings: str) -> RunningGateway:
    return await start_gateway(gateway_config(tmp_path, store_url, metrics=True, **settings))


@pytest.fixture
async def guarded(tmp_path: Path, store_url: str) -> AsyncIterator[RunningGateway]:
    running = await _started(tmp_path, store_url, login__device_login_burst="3", login__max_freezes_per_minute="2")
    yield running
    await running.stop(grace=1.0)


def _retry_delay(error: grpc.aio.AioRpcError) -> float:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.ToNanoseconds() / 1e9
    raise AssertionError("no RetryInfo in the error")


async def test_a_replayed_nonce_is_refused_and_not_evaluated_again(guarded: RunningGateway) -> None:
    login = freezing_login()
    async with MtsgClient(guarded.target) as client:
        first = await client.check_login(login, request_id="first-try")
        assert (await client.check_login(login, request_id="first-try")).verdict_id == first.verdict_id  # a retry
        with pytest.raises(grpc.aio.AioRpcError) as replayed:
            await client.check_login(login, request_id="replayed")
        assert replayed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_reason(replayed.value) == "NONCE_REUSED"
        assert field_violations(replayed.value)[0][0] == "telemetry.nonce"
        with pytest.raises(grpc.aio.AioRpcError):
            await client.check_login(login)  # without a request_id, the same
    assert await guarded.store.count_rows("verdicts") == 1
    assert await guarded.store.count_rows("commands") == 1  # one FREEZE, not three


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"nonce": ""}, "telemetry.nonce"),
        ({"nonce": "short"}, "at least 16 characters"),
        ({"collected_at_offset": -3600}, "too old"),
        ({"collected_at_offset": 3600}, "in the future"),
    ],
)
async def test_telemetry_must_be_fresh_and_carry_a_nonce(
    guarded: RunningGateway, change: dict[str, object], message: str
) -> None:
    login = telemetry()
    if "nonce" in change:
        login.nonce = str(change["nonce"])
    if "collected_at_offset" in change:
        login.collected_at.FromNanoseconds(int((time.time() + float(change["collected_at_offset"])) * 1e9))  # type: ignore[arg-type]
    async with MtsgClient(guarded.target) as client:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.check_login(login)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert any(message in f"{field}: {text}" for field, text in field_violations(refused.value))


async def test_a_flooding_device_is_throttled_with_a_retry_hint_and_others_are_not(guarded: RunningGateway) -> None:
    login = telemetry()
    async with MtsgClient(guarded.target) as client:
        for _ in range(3):  # the burst
            await client.check_login(again(login))
        with pytest.raises(grpc.aio.AioRpcError) as throttled:
            await client.check_login(again(login))
        assert throttled.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_reason(throttled.value) == "DEVICE_RATE_LIMITED"
        assert 0 < _retry_delay(throttled.value) <= 2.0  # 30 a minute: one token every 2 s
        other = await client.check_login(telemetry())
        assert other.action == common_pb2.ACTION_ALLOW
    assert guarded.metrics.rate_limited.labels(limit="device")._value.get() == 1


async def test_the_safety_valve_degrades_freezes_past_the_cap_until_reset(
    guarded: RunningGateway, tmp_path: Path, store_url: str
) -> None:
    async with MtsgClient(guarded.target) as client:
        actions = [(await client.check_login(freezing_login())).action for _ in range(4)]
        held_back = await client.check_login(freezing_login())
    assert actions == [common_pb2.ACTION_FREEZE] * 2 + [common_pb2.ACTION_STEP_UP] * 2
    assert held_back.step_up_method == common_pb2.STEP_UP_METHOD_VIDEO_CALL
    assert held_back.reasons[-1].code == "SAFETY_VALVE"
    assert "REMOTE_CONTROL" in " ".join(reason.code for reason in held_back.reasons)  # the FREEZE's reasons stay
    assert guarded.metrics.safety_valve_open._value.get() == 1
    assert guarded.metrics.freezes_degraded._value.get() == 3
    commands = await guarded.store.commands.after(0, 10)
    assert sorted(command.type for command in commands) == ["FREEZE_ACCOUNT"] * 2 + ["REQUIRE_STEP_UP"] * 3

    env = {"PATH": "/usr/bin:/bin", "MTSG_STORE_DATA_DIR": str(tmp_path / "data"), "MTSG_STORE_URL": store_url}
    status = run_mtsg("valve", "status", environment=env)
    assert status.returncode == 3 and "TRIPPED" in status.stdout
    unexplained = run_mtsg("valve", "reset", environment=env)
    assert unexplained.returncode == 2 and "--reason" in unexplained.stderr
    reset = run_mtsg("valve", "reset", "--reason", "bad feed revoked", "--actor", "secops:kim", environment=env)
    assert reset.returncode == 0, reset.stderr
    assert "FREEZE verdicts go out again" in reset.stdout
    async with MtsgClient(guarded.target) as client:
        assert (await client.check_login(freezing_login())).action == common_pb2.ACTION_FREEZE
    status = run_mtsg("valve", "status", environment=env)
    assert status.returncode == 0 and "closed" in status.stdout and "by secops:kim" in status.stdout


async def test_a_locked_store_gets_the_fail_mode_within_the_deadline_and_the_limit_sheds_load(
    tmp_path: Path,
) -> None:
    running = await _started(tmp_path, login__store_timeout_seconds="0.5", server__max_in_flight="1")
    blocker = sqlite3.connect(tmp_path / "data" / "mtsg.sqlite3", timeout=0)
    try:
        blocker.execute("BEGIN EXCLUSIVE")  # another process holding the database: reads and writes wait
        async with MtsgClient(running.target) as client:
            started = time.monotonic()
            first = asyncio.ensure_future(client.check_login(freezing_login()))
            await asyncio.sleep(0.15)
            with pytest.raises(grpc.aio.AioRpcError) as shed:
                await client.check_login(telemetry())
            assert shed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert error_reason(shed.value) == "TOO_MANY_CALLS"
            answer = await first
            assert time.monotonic() - started < 1.5
            assert answer.action == common_pb2.ACTION_STEP_UP and answer.reasons[0].code == "STORE_UNAVAILABLE"
            blocker.rollback()
            recovered = await client.check_login(freezing_login())
            assert recovered.action == common_pb2.ACTION_FREEZE
        assert running.metrics.fail_mode_verdicts._value.get() == 1
        assert running.metrics.rate_limited.labels(limit="in_flight")._value.get() == 1
    finally:
        blocker.close()
        await running.stop(grace=1.0)


async def test_fail_mode_unavailable_answers_unavailable_instead(tmp_path: Path) -> None:
    running = await _started(tmp_path, login__store_timeout_seconds="0.3", login__fail_mode="unavailable")
    blocker = sqlite3.connect(tmp_path / "data" / "mtsg.sqlite3", timeout=0)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        async with MtsgClient(running.target) as client:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await client.check_login_request(request(telemetry(), request_id="r-1"))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        blocker.close()
        await running.stop(grace=1.0)


async def test_a_full_disk_gets_the_fail_mode_and_nothing_committed_is_lost(tmp_path: Path) -> None:
    """SQLite's own "database or disk is full" (the file may not grow), then room again."""
    running = await _started(tmp_path)
    db = running.store.db  # type: ignore[attr-defined]
    try:
        async with MtsgClient(running.target) as client:
            assert (await client.check_login(freezing_login())).action == common_pb2.ACTION_FREEZE
            (pages,) = await db.fetchone("PRAGMA page_count")
            await db.apply_pragma(f"max_page_count = {pages}")
            crowded = [app(f"com.filler.app{n:03d}.{'x' * 80}") for n in range(300)]
            codes: list[str] = []
            while "STORE_UNAVAILABLE" not in codes and len(codes) < 50:  # the free pages left fill up first
                codes.append((await client.check_login(telemetry(installed_apps=crowded))).reasons[0].code)
            assert codes[-1] == "STORE_UNAVAILABLE", codes
            stored = await running.store.count_rows("verdicts")
            full = await client.check_login(telemetry(installed_apps=crowded, call={"active_call": True}))
            assert full.action == common_pb2.ACTION_STEP_UP and full.reasons[0].code == "STORE_UNAVAILABLE"
            assert await running.store.count_rows("verdicts") == stored
            await db.apply_pragma("max_page_count = 1073741823")
            assert (await client.check_login(freezing_login())).action == common_pb2.ACTION_FREEZE
        assert await running.store.count_rows("commands") == 2
    finally:
        await running.stop(grace=1.0)


async def test_a_call_without_a_deadline_is_cut_by_the_servers_own(tmp_path: Path) -> None:
    """An admin write stuck behind another process's lock, from a caller that set no deadline."""
    running = await _started(tmp_path, server__max_call_seconds="0.5")
    blocker = sqlite3.connect(tmp_path / "data" / "mtsg.sqlite3", timeout=0)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        async with MtsgClient(running.target) as client:
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as cut:
                await client.blocklist.AddEntry(package_entry_request("com.slow.fake", "Slow"), timeout=None)
            assert cut.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert "server.max_call_seconds" in (cut.value.details() or "")
            assert error_reason(cut.value) == "SERVER_DEADLINE" and request_id_of(cut.value)
            assert time.monotonic() - started < 2.0
            blocker.rollback()
            added = await client.blocklist.AddEntry(package_entry_request("com.slow.fake", "Slow"), timeout=None)
            assert added.entry.value == "com.slow.fake"
        assert (
            running.metrics.rpc_requests.labels(
                method="/mtsg.v1.BlocklistService/AddEntry", code="DEADLINE_EXCEEDED"
            )._value.get()
            == 1
        )
    finally:
        blocker.close()
        await running.stop(grace=1.0)
