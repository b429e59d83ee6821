"""Retention in the store, on both backends: what is old goes, what something still needs stays."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.store import Store
from gateway.store.errors import NonceReusedError
from gateway.store.records import (
    AttemptOutcome,
    DeliveryAttempt,
    LoginLocation,
    LoginRecord,
    NewCommand,
    PhoneChangeRecord,
    ShadowFiring,
)
from gateway.store.retention import DAY, RetentionPolicy

NOW = 1_800_000_000.0
OLD = NOW - 40 * DAY
ENDPOINT = "http://core.example/commands"
EVERYTHING_30_DAYS = RetentionPolicy(
    nonce_seconds=600, device_history_days=30, verdicts_days=30, commands_days=30, phone_changes_days=30
)


def _login(
    verdict_id: str,
    at: float,
    *,
    customer: str = "alice",
    device: str = "dev-1",
    located: bool = False,
    command: bool = False,
    endpoints: tuple[str, ...] = (ENDPOINT,),
    shadow: bool = False,
) -> LoginRecord:
    return LoginRecord(
        verdict_id=verdict_id,
        request_id=None,
        request_fingerprint=b"f",
        customer_id=customer,
        device_id=device,
        action="ACTION_FREEZE" if command else "ACTION_ALLOW",
        decided_at=at,
        response=b"r",
        location=LoginLocation(37.5, 127.0, 10.0, "gps", "203.0.113.9") if located else None,
        command=NewCommand(f"cmd_{verdict_id}", "FREEZE_ACCOUNT", customer, verdict_id, at, "gateway", b"", endpoints)
        if command
        else None,
        inventory=b"x" if not command else None,
        shadow=(ShadowFiring("shared-device", "ACTION_STEP_UP"),) if shadow else (),
        nonce=f"nonce-{verdict_id}-0123456789",
    )


async def _deliver(store: Store, command_id: str, outcome: str = "delivered") -> None:
    """One real claim and attempt, as the dispatcher makes them."""
    (claimed,) = [
        item
        for item in await store.commands.claim_due([ENDPOINT], "me", NOW, 30, 100)
        if item.command.command_id == command_id
    ]
    status = 200 if outcome == "delivered" else 500
    attempt = DeliveryAttempt(ENDPOINT, 1, NOW, 1.0, status, AttemptOutcome(outcome), "", 0.0)
    assert await store.commands.record_attempt(claimed.command.cursor, attempt, "me")
    await store.commands.release_leases("me")  # the claim leased the others too


async def test_nothing_is_forgotten_by_default_but_old_nonces(store: Store) -> None:
    await store.record_login(_login("v-old", OLD, located=True, shadow=True))
    await store.record_login(_login("v-new", NOW - 60))
    removed = await store.purge(RetentionPolicy(nonce_seconds=600), NOW)
    assert removed == {"login_nonces": 1}
    for table, rows in [("verdicts", 2), ("customer_devices", 1), ("login_locations", 1), ("shadow_firings", 1)]:
        assert await store.count_rows(table) == rows, table
    # The recent nonce is still remembered: its replay is still refused.
    with pytest.raises(NonceReusedError):
        await store.record_login(dataclasses.replace(_login("v-new", NOW), verdict_id="v-replay"))


async def test_device_history_past_its_age_goes_and_recent_history_stays(store: Store) -> None:
    await store.record_login(_login("v1", OLD, device="old-phone", located=True))
    await store.record_login(_login("v2", NOW - DAY, device="new-phone", located=True))
    await store.record_phone_changes(
        [
            PhoneChangeRecord(f"e-{n}", "alice", "h1", "h2", "k1", at, "PORT_OUT", "telco", at)
            for n, at in enumerate((OLD, NOW - DAY))
        ]
    )
    removed = await store.purge(EVERYTHING_30_DAYS, NOW)
    assert removed["customer_devices"] == 1
    assert removed["device_inventories"] == 1
    assert removed["login_locations"] == 1
    assert removed["phone_number_changes"] == 1
    # v1 lost its location in this run, so it goes with the verdicts; v2 is recent.
    assert removed["verdicts"] == 1
    devices = await store.db.fetch("SELECT device_id FROM customer_devices")  # type: ignore[attr-defined]
    assert [row[0] for row in devices] == ["new-phone"]
    assert await store.get_verdict("v1") is None
    assert await store.get_verdict("v2") is not None


async def test_a_verdict_something_still_points_at_stays(store: Store) -> None:
    await store.record_login(_login("located", OLD, located=True))
    await store.record_login(_login("commanded", OLD, command=True))
    await store.record_login(_login("alone", OLD, shadow=True))
    # Device history is kept for ever: the location keeps its verdict.  The command is pending.
    policy = RetentionPolicy(nonce_seconds=600, verdicts_days=30, commands_days=30)
    removed = await store.purge(policy, NOW)
    assert removed["verdicts"] == 1
    assert removed["shadow_firings"] == 1
    assert removed["commands"] == 0
    assert await store.get_verdict("alone") is None
    assert await store.get_verdict("located") is not None
    assert await store.get_verdict("commanded") is not None


async def test_only_delivered_and_superseded_commands_go_with_their_deliveries_and_attempts(store: Store) -> None:
    for customer in ("alice", "bob", "carol"):
        for n in range(3 if customer != "carol" else 2):
            await store.record_login(_login(f"{customer[0]}{n}", OLD + n, customer=customer, command=True))
    for command_id in ("cmd_a0", "cmd_a1", "cmd_a2", "cmd_b0"):
        await _deliver(store, command_id)
    await _deliver(store, "cmd_c0", outcome="dead")  # dead-lettered: the operator still has to look at it
    await _deliver(store, "cmd_c1")
    removed = await store.purge(EVERYTHING_30_DAYS, NOW)
    # alice's a0 and a1 and bob's b0 go.  a2 and b2 are their customers' newest, b1 is still pending.
    assert removed["commands"] == 3
    for gone in ("cmd_a0", "cmd_a1", "cmd_b0"):
        assert await store.commands.get(gone) is None, gone
    for kept in ("cmd_a2", "cmd_b1", "cmd_b2", "cmd_c0", "cmd_c1"):
        assert await store.commands.get(kept) is not None, kept
    assert await store.count_rows("command_deliveries") == 5
    assert await store.count_rows("command_attempts") == 3
    # Their verdicts were freed by the same run.
    assert await store.get_verdict("a0") is None
    assert await store.get_verdict("a2") is not None
    # alice's order continues from her newest command, not from 1.
    await store.record_login(_login("a3", NOW, customer="alice", command=True))
    following = await store.commands.get("cmd_a3")
    assert following is not None and following.sequence == 4


async def test_a_command_waits_for_every_stream_consumer(store: Store) -> None:
    for n in range(3):
        await store.record_login(_login(f"s{n}", OLD + n, command=True, endpoints=()))
    stream_only = RetentionPolicy(nonce_seconds=600, commands_days=30)
    # No deliveries and no consumer yet: nobody has received these, so nothing may go.
    assert (await store.purge(stream_only, NOW))["commands"] == 0
    first = await store.commands.get("cmd_s0")
    second = await store.commands.get("cmd_s1")
    assert first is not None and second is not None
    await store.commands.acknowledge("core-a", second.cursor, NOW)
    await store.commands.acknowledge("core-b", first.cursor, NOW)
    # core-b has acknowledged only the first.
    assert (await store.purge(stream_only, NOW))["commands"] == 1
    assert await store.commands.get("cmd_s0") is None
    await store.commands.acknowledge("core-b", second.cursor, NOW)
    assert (await store.purge(stream_only, NOW))["commands"] == 1
    assert await store.commands.get("cmd_s2") is not None  # the newest stays


async def test_a_consumer_that_no_longer_reads_holds_commands_until_it_is_forgotten(store: Store) -> None:
    for n in range(3):
        await store.record_login(_login(f"g{n}", OLD + n, command=True, endpoints=()))
    stream_only = RetentionPolicy(nonce_seconds=600, commands_days=30)
    newest = await store.commands.get("cmd_g2")
    assert newest is not None
    await store.commands.acknowledge("core-live", newest.cursor, NOW)
    await store.commands.acknowledge("smoke-test", 0, OLD)  # tried once, long ago, and never again
    assert (await store.purge(stream_only, NOW))["commands"] == 0

    assert not await store.commands.forget_consumer("nobody", NOW, "ops:kim", "typo")
    assert await store.commands.forget_consumer("smoke-test", NOW, "ops:kim", "a test run's consumer id")

    assert [consumer for consumer, _, _ in await store.commands.consumers()] == ["core-live"]
    assert (await store.purge(stream_only, NOW))["commands"] == 2  # all but the customer's newest
    audit = await store.blocklist.audit_list(10, target="smoke-test")
    assert [(entry.action, entry.actor, entry.detail) for entry in audit] == [
        ("command.consumer_forget", "ops:kim", "a test run's consumer id")
    ]


async def test_small_batches_remove_everything_and_report_progress(store: Store) -> None:
    for n in range(7):
        await store.record_login(_login(f"v{n}", OLD, device=f"dev-{n}"))
    seen: list[tuple[str, int, bool]] = []
    policy = RetentionPolicy(nonce_seconds=600, device_history_days=30)
    assert (await store.count_purgeable(policy, NOW))["customer_devices"] == 7
    removed = await store.purge(policy, NOW, batch_size=3, progress=lambda *event: seen.append(event))
    assert removed["customer_devices"] == 7
    devices = [event for event in seen if event[0] == "customer_devices"]
    assert [rows for _, rows, _ in devices] == [3, 6, 7]
    assert [finished for _, _, finished in devices] == [False, False, True]
    assert await store.count_rows("customer_devices") == 0
    assert (await store.count_purgeable(policy, NOW))["customer_devices"] == 0


async def test_a_device_seen_again_is_not_forgotten(store: Store) -> None:
    await store.record_login(_login("v1", OLD))
    await store.record_login(_login("v2", NOW - 60))  # the same customer and device, recently
    removed = await store.purge(RetentionPolicy(nonce_seconds=600, device_history_days=30), NOW)
    assert removed["customer_devices"] == 0
    assert removed["device_inventories"] == 0
    assert await store.count_rows("customer_devices") == 1
