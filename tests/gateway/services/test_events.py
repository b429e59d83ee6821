"""EventService.ReportPhoneNumberChange: idempotent, validated, and numbers never stored raw."""

from __future__ import annotations

import time
import uuid

import grpc
import pytest

from gateway.client import MtsgClient, field_violations
from gateway.generated.mtsg.v1 import event_service_pb2
from gateway.server.start import RunningGateway
from gateway.store.sql_store import TABLES, SQLStore
from tests.helpers import phone_change


async def test_replayed_events_are_counted_as_duplicates(client: MtsgClient, gateway: RunningGateway) -> None:
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    batch = [phone_change(customer), phone_change(customer)]
    first = await client.report_phone_number_changes(batch)
    replay = await client.report_phone_number_changes(batch)
    assert (first.accepted_count, first.duplicate_count) == (2, 0)
    assert (replay.accepted_count, replay.duplicate_count) == (0, 2)
    assert await gateway.store.count_rows("phone_number_changes") == 2  # type: ignore[attr-defined]


async def test_phone_numbers_are_stored_only_as_keyed_hashes(
    client: MtsgClient, gateway: RunningGateway, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    await client.report_phone_number_changes(
        [phone_change(customer, previous_phone_number="+82 10-5555-0101", new_phone_number="+821055550202")]
    )
    if gateway.store.backend == "postgresql":
        store = gateway.store
        assert isinstance(store, SQLStore)
        data = repr([await store.db.fetch(f"SELECT * FROM {table}") for table in TABLES]).encode()
    else:
        await gateway.stop(grace=1.0)  # flush everything to disk before reading the files
        data = b"".join(path.read_bytes() for path in (tmp_path / "data").glob("mtsg.sqlite3*"))
    assert customer.encode() in data
    for raw in (b"+821055550101", b"821055550101", b"1055550101", b"+821055550202", b"1055550202"):
        assert raw not in data


def _in_the_future() -> event_service_pb2.PhoneNumberChange:
    change = phone_change("c1")
    change.changed_at.FromSeconds(int(time.time()) + 86400)
    return change


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ([], "changes"),
        ([phone_change("c1", new_phone_number="010-1234-5678")], "changes[0].new_phone_number"),
        ([phone_change("c1", previous_phone_number="")], "changes[0].previous_phone_number"),
        ([phone_change("c1", previous_phone_number="+82abc")], "changes[0].previous_phone_number"),
        ([phone_change("")], "changes[0].customer_id"),
        ([phone_change("c1", event_id="")], "changes[0].event_id"),
        ([phone_change("c1", event_id="same"), phone_change("c1", event_id="same")], "changes[1].event_id"),
        ([_in_the_future()], "changes[0].changed_at"),
        ([phone_change("c1", kind=99)], "changes[0].kind"),
        ([phone_change("c1", event_id="evt-1\n")], "changes[0].event_id"),
        ([phone_change("c1", new_phone_number="+821012345678\n")], "changes[0].new_phone_number"),
    ],
    ids=[
        "empty",
        "national",
        "missing",
        "letters",
        "no-customer",
        "no-id",
        "dup-id",
        "future",
        "bad-kind",
        "id-newline",
        "number-newline",
    ],
)
async def test_bad_batches_are_refused_whole(client: MtsgClient, gateway: RunningGateway, changes, field: str) -> None:  # type: ignore[no-untyped-def]
    good = phone_change("c-good")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.report_phone_number_changes([good, *changes] if changes else [])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    shifted = field if not changes else field.replace(f"changes[{field[8]}]", f"changes[{int(field[8]) + 1}]")
    assert shifted in [name for name, _ in field_violations(caught.value)]
    assert await gateway.store.count_rows("phone_number_changes") == 0  # type: ignore[attr-defined]


async def test_batch_size_is_limited(client: MtsgClient) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.report_phone_number_changes([phone_change("c1") for _ in range(1001)])
    assert field_violations(caught.value) == [("changes", "at most 1000 changes per call, got 1001")]
