"""Every string field of the contract has a limit: a test walks them all, so a new one without one fails.

Each string field of every request, one at a time, is set to a value far past any sensible length in
an otherwise ordinary request, and sent to a real gateway. The gateway must refuse it, naming the
field (INVALID_ARGUMENT with a field violation at its path), or answer NOT_FOUND for an identifier it
only looks up. Nothing is stored or held for a string that long.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import grpc
import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from gateway.client import field_violations
from gateway.generated.mtsg.v1 import (
    blocklist_service_pb2,
    command_feed_service_pb2,
    event_service_pb2,
    policy_service_pb2,
    threat_signal_service_pb2,
)
from gateway.server.start import SERVICE_NAMES, RunningGateway
from tests.helpers import app, package_entry_request, phone_change, telemetry

HUGE = "a" * 600_000  # past every limit, the policy document's 512 KiB among them
# Fields of BlocklistEntry that the gateway sets itself and ignores when a caller sends them.
OUTPUT_ONLY = {
    "/mtsg.v1.BlocklistService/AddEntry": {
        "entry.entry_id",
        "entry.created_by",
        "entry.modified_by",
        "entry.revoke_reason",
    },
}
# An ordinary request of each method, with every optional message a string lives in present.
BASES: dict[str, Callable[[], Message]] = {
    "/mtsg.v1.ThreatSignalService/CheckLogin": lambda: threat_signal_service_pb2.CheckLoginRequest(
        request_id=uuid.uuid4().hex,
        telemetry=telemetry(
            installed_apps=[app("com.kakao.talk", granted_permissions=["android.permission.CAMERA"])],
            location={"latitude": 37.5, "longitude": 127.0, "country_code": "KR"},
            attestation={"provider": "play-integrity", "meets_basic_integrity": True},
        ),
    ),
    "/mtsg.v1.EventService/ReportPhoneNumberChange": lambda: event_service_pb2.ReportPhoneNumberChangeRequest(
        request_id=uuid.uuid4().hex, changes=[phone_change(f"c-{uuid.uuid4().hex[:8]}")]
    ),
    "/mtsg.v1.BlocklistService/AddEntry": lambda: package_entry_request(f"com.bad.{uuid.uuid4().hex[:8]}", "Fam"),
    "/mtsg.v1.BlocklistService/RevokeEntry": lambda: blocklist_service_pb2.RevokeEntryRequest(
        request_id=uuid.uuid4().hex, entry_id="e_1", reason="false positive"
    ),
    "/mtsg.v1.BlocklistService/GetEntry": lambda: blocklist_service_pb2.GetEntryRequest(entry_id="e_1"),
    "/mtsg.v1.BlocklistService/ListEntries": lambda: blocklist_service_pb2.ListEntriesRequest(),
    "/mtsg.v1.BlocklistService/ImportBundle": lambda: blocklist_service_pb2.ImportBundleRequest(),
    "/mtsg.v1.CommandFeedService/Ack": lambda: command_feed_service_pb2.AckRequest(consumer_id="core-1", cursor=1),
    "/mtsg.v1.CommandFeedService/Subscribe": lambda: command_feed_service_pb2.SubscribeRequest(consumer_id="core-1"),
    "/mtsg.v1.PolicyService/GetPolicy": lambda: policy_service_pb2.GetPolicyRequest(),
    "/mtsg.v1.PolicyService/ValidatePolicy": lambda: policy_service_pb2.ValidatePolicyRequest(),
    "/mtsg.v1.PolicyService/ApplyPolicy": lambda: policy_service_pb2.ApplyPolicyRequest(),
    "/mtsg.v1.PolicyService/ListPolicyVersions": lambda: policy_service_pb2.ListPolicyVersionsRequest(),
    "/mtsg.v1.PolicyService/RollbackPolicy": lambda: policy_service_pb2.RollbackPolicyRequest(version="1"),
}


def _string_paths(descriptor: Descriptor, prefix: str = "") -> Iterator[str]:
    """The path of every string field below ``descriptor``, a repeated one's first element as ``[0]``."""
    for field in descriptor.fields:
        repeated = "[0]" if field.is_repeated else ""
        if field.type == FieldDescriptor.TYPE_STRING:
            yield f"{prefix}{field.name}{repeated}"
        elif field.type == FieldDescriptor.TYPE_MESSAGE and not field.message_type.full_name.startswith("google."):
            yield from _string_paths(field.message_type, f"{prefix}{field.name}{repeated}.")


def _cases() -> Iterator[tuple[str, str]]:
    pool = descriptor_pool.Default()
    for service in SERVICE_NAMES:
        for method in pool.FindServiceByName(service).methods:
            path = f"/{service}/{method.name}"
            for field in _string_paths(method.input_type):
                if field not in OUTPUT_ONLY.get(path, set()):
                    yield path, field


def _set(message: Message, path: str, value: str) -> None:
    *parents, last = path.split(".")
    for part in parents:
        name, _, index = part.partition("[")
        message = getattr(message, name)[0] if index else getattr(message, name)
        if index and not message.ListFields():  # pragma: no cover - every base fills its lists
            raise AssertionError(f"the base request has no element at {part}")
    name, _, index = last.partition("[")
    if index:
        values = getattr(message, name)
        if values:
            values[0] = value
        else:
            values.append(value)
    else:
        setattr(message, name, value)


def test_every_method_with_strings_has_a_base_request() -> None:
    assert {path for path, _ in _cases()} <= set(BASES)


# Limits are the gateway's, not the store's: one backend is enough.
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("method", "field"), sorted(_cases()))
async def test_a_huge_string_is_refused_at_its_field(gateway: RunningGateway, method: str, field: str) -> None:
    request = BASES[method]()
    _set(request, field, HUGE)
    identity = lambda data: data  # noqa: E731 - raw bytes both ways
    async with grpc.aio.insecure_channel(gateway.target) as channel:
        call = channel.unary_stream if method.endswith("/Subscribe") else channel.unary_unary
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            answer = call(method, identity, identity)(request.SerializeToString(), timeout=10)
            if method.endswith("/Subscribe"):
                async for _ in answer:  # type: ignore[attr-defined]
                    break
            else:
                await answer
    code = refused.value.code()
    assert code in {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}, (code, refused.value.details())
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert field in [path for path, _ in field_violations(refused.value)], refused.value.details()
