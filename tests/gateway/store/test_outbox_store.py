"""The outbox's rules in the store: one command per verdict, per-customer order, leases, outcomes."""

from __future__ import annotations

import asyncio

from gateway.store import Store
from gateway.store.records import AttemptOutcome, DeliveryAttempt, LoginRecord, NewCommand

NOW = 1_800_000_000.0
ENDPOINT = "http://core.example/commands"


def _login(verdict_id: str, customer_id: str, request_id: str | None = None) -> LoginRecord:
    return LoginRecord(
        verdict_id=verdict_id,
        request_id=request_id,
        request_fingerprint=b"f",
        customer_id=customer_id,
        device_id="dev",
        action="ACTION_FREEZE",
        decided_at=NOW,
        response=b"r",
        location=None,
        command=NewCommand(
            command_id=f"cmd_{verdict_id}",
            type="FREEZE_ACCOUNT",
            customer_id=customer_id,
            verdict_id=verdict_id,
            created_at=NOW,
            issued_by="gateway",
            body=b"",
            endpoints=(ENDPOINT,),
        ),
    )


def _attempt(outcome: str, attempt: int = 1, next_at: float = 0.0) -> DeliveryAttempt:
    return DeliveryAttempt(
        ENDPOINT, attempt, NOW, 1.0, 200 if outcome == "delivered" else 500, AttemptOutcome(outcome), "", next_at
    )


async def test_a_retried_login_stores_its_command_once(store: Store) -> None:
    await store.record_login(_login("v1", "alice", request_id="r1"))
    await store.record_login(_login("v2", "alice", request_id="r1"))
    assert await store.count_rows("commands") == 1
    assert await store.count_rows("command_deliveries") == 1


async def test_only_the_oldest_pending_command_of_a_customer_is_due(store: Store) -> None:
    for verdict_id, customer in [("v1", "alice"), ("v2", "alice"), ("v3", "bob")]:
        await store.record_login(_login(verdict_id, customer))
    due = await store.commands.claim_due([ENDPOINT], "me", NOW, 30, 10)
    assert [(item.command.command_id, item.command.sequence) for item in due] == [("cmd_v1", 1), ("cmd_v3", 1)]
    # Leased: nobody else gets them, and alice's second still waits for her first.
    assert await store.commands.claim_due([ENDPOINT], "other", NOW, 30, 10) == []
    assert await store.commands.record_attempt(due[0].command.cursor, _attempt("delivered"), "me")
    again = await store.commands.claim_due([ENDPOINT], "other", NOW, 30, 10)
    assert [(item.command.command_id, item.command.sequence) for item in again] == [("cmd_v2", 2)]


async def test_an_expired_lease_is_taken_over_and_the_old_holders_outcome_is_ignored(store: Store) -> None:
    await store.record_login(_login("v1", "alice"))
    (first,) = await store.commands.claim_due([ENDPOINT], "crashed", NOW, 30, 10)
    (second,) = await store.commands.claim_due([ENDPOINT], "survivor", NOW + 31, 30, 10)
    assert second.command.command_id == first.command.command_id
    assert not await store.commands.record_attempt(first.command.cursor, _attempt("delivered"), "crashed")
    assert await store.commands.record_attempt(second.command.cursor, _attempt("delivered"), "survivor")
    assert await store.count_rows("command_attempts") == 1


async def test_a_retry_waits_for_its_time_and_a_dead_letter_unblocks_the_customer(store: Store) -> None:
    await store.record_login(_login("v1", "alice"))
    await store.record_login(_login("v2", "alice"))
    (first,) = await store.commands.claim_due([ENDPOINT], "me", NOW, 30, 10)
    await store.commands.record_attempt(first.command.cursor, _attempt("retry", next_at=NOW + 5), "me")
    assert await store.commands.claim_due([ENDPOINT], "me", NOW + 4, 30, 10) == []
    (retried,) = await store.commands.claim_due([ENDPOINT], "me", NOW + 5, 30, 10)
    assert retried.attempts == 1
    await store.commands.record_attempt(retried.command.cursor, _attempt("dead", attempt=2), "me")
    (following,) = await store.commands.claim_due([ENDPOINT], "me", NOW + 5, 30, 10)
    assert following.command.command_id == "cmd_v2"
    assert await store.commands.backlog() == {ENDPOINT: 1}


async def test_gone_disables_the_endpoint_and_redeliver_requeues_with_a_fresh_budget(store: Store) -> None:
    await store.record_login(_login("v1", "alice"))
    (due,) = await store.commands.claim_due([ENDPOINT], "me", NOW, 30, 10)
    await store.commands.record_attempt(
        due.command.cursor, DeliveryAttempt(ENDPOINT, 1, NOW, 1.0, 410, AttemptOutcome.GONE, "HTTP 410", NOW), "me"
    )
    assert ENDPOINT in await store.commands.disabled_endpoints()
    assert await store.commands.claim_due([ENDPOINT], "me", NOW + 60, 30, 10) == []
    assert await store.commands.enable_endpoint(ENDPOINT, NOW, "ops")
    assert not await store.commands.enable_endpoint(ENDPOINT, NOW, "ops")
    (back,) = await store.commands.claim_due([ENDPOINT], "me", NOW + 60, 30, 10)
    await store.commands.record_attempt(back.command.cursor, _attempt("dead", attempt=2), "me")
    assert await store.commands.redeliver("cmd_v1", [ENDPOINT, "http://second.example/"], NOW, "ops") == 2
    fresh = await store.commands.claim_due([ENDPOINT, "http://second.example/"], "me", NOW, 30, 10)
    assert sorted((item.endpoint, item.attempts) for item in fresh) == [
        ("http://core.example/commands", 0),
        ("http://second.example/", 0),
    ]


async def test_released_leases_are_claimable_at_once(store: Store) -> None:
    await store.record_login(_login("v1", "alice"))
    await store.commands.claim_due([ENDPOINT], "stopping", NOW, 30, 10)
    assert await store.commands.release_leases("stopping") == 1
    (again,) = await store.commands.claim_due([ENDPOINT], "restarted", NOW, 30, 10)
    assert again.command.command_id == "cmd_v1"


async def test_acknowledgements_sent_together_each_answer_a_position_that_never_moves_back(store: Store) -> None:
    positions = await asyncio.gather(*(store.commands.acknowledge("core-a", cursor, 1.0) for cursor in (5, 3, 7, 2)))
    assert all(position >= cursor for position, cursor in zip(positions, (5, 3, 7, 2), strict=True))
    assert await store.commands.consumer_cursor("core-a") == 7 == max(positions)
    assert await store.commands.acknowledge("core-a", 4, 2.0) == 7  # a late, lower ack changes nothing
    assert await store.commands.acknowledge("core-b", 1, 2.0) == 1  # each consumer its own position


async def test_a_delivery_being_attempted_at_the_old_url_is_not_moved_until_its_attempt_ends(store: Store) -> None:
    """A replica that still has the old URL configured may be sending it right now: moved, it went to both URLs."""
    new = "https://core-new.example/commands"
    for verdict_id, customer in [("v1", "alice"), ("v2", "bob")]:
        await store.record_login(_login(verdict_id, customer))
    (leased,) = await store.commands.claim_due([ENDPOINT], "old-replica", NOW, 30, 1)

    move = await store.commands.move_pending(ENDPOINT, new, NOW + 1, "test:operator")

    assert (move.moved, move.kept, move.sending, move.sending_until) == (1, 0, 1, NOW + 30)
    left = [row.endpoint for row in await store.commands.deliveries(leased.command.cursor)]
    assert left == [ENDPOINT]
    # The old replica's attempt fails and leaves the delivery pending; the next move takes it.
    retry = DeliveryAttempt(ENDPOINT, 1, NOW + 2, 1.0, 503, AttemptOutcome.RETRY, "unavailable", NOW + 60)
    assert await store.commands.record_attempt(leased.command.cursor, retry, "old-replica")
    again = await store.commands.move_pending(ENDPOINT, new, NOW + 3, "test:operator")
    assert (again.moved, again.kept, again.sending) == (1, 0, 0)
    assert await store.commands.backlog() == {new: 2}
