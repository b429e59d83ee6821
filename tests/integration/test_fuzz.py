"""Random and malformed messages to every RPC of a running `mtsg serve`: it never crashes, never answers
INTERNAL or UNKNOWN to a client's mistake, never sends an error too large for the trailers it travels
in, and keeps serving.  The number of cases tried is printed."""

from __future__ import annotations

import operator
import os
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.server.start import SERVICE_NAMES
from tests.conftest import BACKENDS
from tests.helpers import unknown_field
from tests.integration.conftest import LoggedProcess, serve_command
from tests.postgres import PostgresDatabases, run_aside

FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
# What a client's grpc says when the error's trailers are past its limit: the error itself is lost.
OVERFLOWED_TRAILERS = "metadata size exceeds"
EXAMPLES = 100
tried: dict[str, int] = {}


def _methods() -> list[MethodDescriptor]:
    pool = descriptor_pool.Default()
    return [method for name in SERVICE_NAMES for method in pool.FindServiceByName(name).methods]


METHODS = {f"/{method.containing_service.full_name}/{method.name}": method for method in _methods()}

# Now and then a huge string (5,000 to 40,000 repeats of a short one): errors that quote it must stay small.
_HUGE_TEXT = st.builds(operator.mul, st.text(min_size=1, max_size=3), st.integers(5_000, 40_000))
_TEXT = st.integers(0, 9).flatmap(lambda pick: _HUGE_TEXT if pick == 0 else st.text(max_size=80))
_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_STRING: st.integers(0, 9).flatmap(
        lambda pick: _HUGE_TEXT if pick == 0 else st.text(max_size=80)
    ),
    FieldDescriptor.TYPE_BYTES: st.binary(max_size=80),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_DOUBLE: st.floats(allow_nan=True, allow_infinity=True),
    FieldDescriptor.TYPE_FLOAT: st.floats(width=32, allow_nan=True, allow_infinity=True),
    FieldDescriptor.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: st.integers(0, 2**64 - 1),
    # Known values and unknown ones: a client built from a newer proto may send either.
    FieldDescriptor.TYPE_ENUM: st.integers(-3, 40),
}


def _field_value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.GetOptions().map_entry:
            return st.just(None)  # maps are filled below, from their value type
        return message_values(field.message_type, depth + 1)
    return _SCALARS[field.type]


def message_values(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[bytes]:
    """Serialized messages of ``descriptor`` with a random subset of fields set to random values."""
    cls = message_factory.GetMessageClass(descriptor)
    fields = [field for field in descriptor.fields if depth < 3 or field.type != FieldDescriptor.TYPE_MESSAGE]

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        message = cls()
        for field in draw(st.lists(st.sampled_from(fields), max_size=len(fields), unique=True)) if fields else []:
            is_map = field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry
            if is_map:
                for key in draw(st.lists(st.text(max_size=20), max_size=3)):
                    getattr(message, field.name)[key] = draw(st.text(max_size=20))
            elif field.is_repeated:
                values = draw(st.lists(_field_value(field, depth), max_size=3))
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    for value in values:
                        getattr(message, field.name).add().MergeFromString(value)
                else:
                    getattr(message, field.name).extend(values)
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                getattr(message, field.name).MergeFromString(draw(_field_value(field, depth)))
            else:
                setattr(message, field.name, draw(_field_value(field, depth)))
        return message.SerializeToString() + draw(_UNKNOWN_FIELD)

    return build()


# Now and then a field the contract does not define, at any depth: it is ignored, never kept or stored.
_UNKNOWN_FIELD = st.integers(0, 4).flatmap(
    lambda pick: (
        st.builds(unknown_field, st.integers(1_000, 50_000), st.binary(max_size=2_000)) if pick == 0 else st.just(b"")
    )
)


@pytest.fixture(scope="module", params=BACKENDS)
def fuzzed_gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LoggedProcess, grpc.Channel]]:
    """`mtsg serve` on each backend: PostgreSQL refuses some text SQLite stores (a NUL), so both are fuzzed."""
    data = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    environment = dict(os.environ)
    if request.param == "postgresql":
        databases: PostgresDatabases = request.getfixturevalue("postgres")
        urls: list[str] = []

        async def create() -> None:
            urls.append(await databases.create())

        run_aside(create)
        environment["MTSG_STORE_URL"] = urls[0]
        environment["MTSG_PRIVACY_PHONE_HASH_KEY_FILE"] = str(data / "phone-hash.key")
    process = LoggedProcess(serve_command(str(data)), data / "gateway.log", environment, data)
    target = f"127.0.0.1:{process.wait_for_log('serving')['port']}"
    with grpc.insecure_channel(target) as channel:
        yield process, channel
    process.stop()
    print(
        f"\nfuzz ({request.param}): {sum(tried.values())} cases so far over {len(tried)} RPCs;"
        " none crashed the gateway or got INTERNAL/UNKNOWN"
    )


def _call(channel: grpc.Channel, path: str, body: bytes) -> grpc.StatusCode:
    """The call's status code; an error whose trailers overflowed the client fails the test here."""
    method = METHODS[path]
    identity = lambda data: data  # noqa: E731 - raw bytes both ways
    tried[path] = tried.get(path, 0) + 1
    try:
        if method.server_streaming:
            for _ in channel.unary_stream(path, identity, identity)(body, timeout=0.3):
                break
        else:
            channel.unary_unary(path, identity, identity)(body, timeout=10)
    except grpc.RpcError as error:
        assert OVERFLOWED_TRAILERS not in (error.details() or ""), f"{path}: the error did not fit its trailers"  # type: ignore[attr-defined]
        return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.parametrize("path", sorted(METHODS))
def test_random_bytes_are_refused_as_the_clients_mistake(
    fuzzed_gateway: tuple[LoggedProcess, grpc.Channel], path: str
) -> None:
    _, channel = fuzzed_gateway

    @FUZZ_SETTINGS
    @given(body=st.binary(max_size=512))
    def check(body: bytes) -> None:
        assert _call(channel, path, body) not in FORBIDDEN

    check()


@pytest.mark.parametrize("path", sorted(METHODS))
def test_random_well_formed_messages_never_break_the_gateway(
    fuzzed_gateway: tuple[LoggedProcess, grpc.Channel], path: str
) -> None:
    _, channel = fuzzed_gateway

    @FUZZ_SETTINGS
    @given(body=message_values(METHODS[path].input_type))
    def check(body: bytes) -> None:
        assert _call(channel, path, body) not in FORBIDDEN

    check()


def test_the_gateway_still_serves_after_the_fuzzing(fuzzed_gateway: tuple[LoggedProcess, grpc.Channel]) -> None:
    process, channel = fuzzed_gateway
    assert process.process.poll() is None
    response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    assert sum(tried.values()) >= len(METHODS) * 2 * EXAMPLES * 0.5  # hypothesis may stop early on tiny spaces
