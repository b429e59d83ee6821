"""The safety valve's rules in the store: a FREEZE past the cap is replaced by its STEP_UP and trips the
valve in the same transaction, on both backends."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.store import Store
from gateway.store.errors import NonceReusedError
from gateway.store.records import LoginRecord, NewCommand

NOW = 1_800_000_000.0
CAP = 2


def _freeze(verdict_id: str, *, request_id: str | None = None, nonce: str = "") -> LoginRecord:
    return LoginRecord(
        verdict_id=verdict_id,
        request_id=request_id,
        request_fingerprint=b"f",
        customer_id=f"customer-{verdict_id}",
        device_id=f"device-{verdict_id}",
        action="ACTION_FREEZE",
        decided_at=NOW,
        response=b"freeze",
        location=None,
        command=_command(verdict_id, "FREEZE_ACCOUNT"),
        nonce=nonce,
    )


def _step_up_instead(freeze: LoginRecord) -> LoginRecord:
    return dataclasses.replace(
        freeze, action="ACTION_STEP_UP", response=b"step-up", command=_command(freeze.verdict_id, "REQUIRE_STEP_UP")
    )


def _command(verdict_id: str, kind: str) -> NewCommand:
    return NewCommand(
        command_id=f"cmd_{verdict_id}",
        type=kind,
        customer_id=f"customer-{verdict_id}",
        verdict_id=verdict_id,
        created_at=NOW,
        issued_by="gateway",
        body=b"",
        endpoints=("http://core.example/commands",),
    )


async def _record(store: Store, freeze: LoginRecord) -> tuple[bool, bool, bytes]:
    outcome = await store.record_freeze(freeze, cap=CAP, held_back=_step_up_instead(freeze))
    return outcome.held_back, outcome.tripped_valve, outcome.stored.response


async def test_freezes_pass_up_to_the_cap_then_their_step_ups_are_stored_and_the_valve_trips_once(
    store: Store,
) -> None:
    outcomes = [await _record(store, _freeze(f"v{n}")) for n in range(4)]
    assert outcomes == [
        (False, False, b"freeze"),
        (False, False, b"freeze"),
        (True, True, b"step-up"),  # the third FREEZE in the minute passes the cap of two: the alarm
        (True, False, b"step-up"),  # the valve stays tripped
    ]
    assert (await store.guards.valve()).tripped
    commands = await store.commands.after(0, 10)
    assert [command.type for command in commands] == ["FREEZE_ACCOUNT"] * 2 + ["REQUIRE_STEP_UP"] * 2
    stored = [await store.get_verdict(f"v{n}") for n in range(4)]
    assert [row.action if row else None for row in stored] == ["ACTION_FREEZE"] * 2 + ["ACTION_STEP_UP"] * 2


async def test_a_retry_past_the_cap_returns_the_first_answer_and_trips_nothing(store: Store) -> None:
    for n in range(CAP):
        await _record(store, _freeze(f"v{n}", request_id=f"r{n}"))
    retry = _freeze("v-retry", request_id="r0")
    assert await _record(store, retry) == (False, False, b"freeze")  # the first call's FREEZE, as it was stored
    assert not (await store.guards.valve()).tripped
    assert await store.count_rows("verdicts") == CAP


async def test_a_replayed_nonce_past_the_cap_writes_nothing_and_leaves_the_valve_closed(store: Store) -> None:
    await _record(store, _freeze("v0", nonce="n-1"))
    await _record(store, _freeze("v1"))
    replay = dataclasses.replace(_freeze("v2", nonce="n-1"), device_id="device-v0")
    with pytest.raises(NonceReusedError):
        await _record(store, replay)
    assert not (await store.guards.valve()).tripped  # the trip rolled back with the STEP_UP it came with
    assert await store.count_rows("verdicts") == 2
    assert await store.count_rows("commands") == 2


async def test_a_reset_valve_counts_afresh(store: Store) -> None:
    for n in range(CAP + 1):
        await _record(store, _freeze(f"v{n}"))
    await store.guards.reset_valve("secops:kim", NOW + 1, "feed fixed")
    after_reset = dataclasses.replace(_freeze("after-reset"), decided_at=NOW + 2)  # the same minute as the others
    assert await _record(store, after_reset) == (False, False, b"freeze")
