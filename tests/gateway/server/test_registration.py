"""Only the login path's methods are registered with grpc; every other method is still served, found by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from gateway.generated.mtsg.v1 import policy_service_pb2, policy_service_pb2_grpc
from gateway.server.start import start_gateway
from tests.helpers import gateway_config


async def test_only_the_login_path_is_registered_and_the_rest_still_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """grpc.aio waits on one pending call per registered method for every call that arrives."""
    registered: list[str] = []
    make_server = grpc.aio.server

    def recording_server(*args: Any, **kwargs: Any) -> grpc.aio.Server:
        server = make_server(*args, **kwargs)
        register = server.add_registered_method_handlers

        def record(service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
            registered.append(service)
            register(service, handlers)

        server.add_registered_method_handlers = record  # type: ignore[method-assign]
        return server

    monkeypatch.setattr(grpc.aio, "server", recording_server)
    running = await start_gateway(gateway_config(tmp_path))
    try:
        assert sorted(registered) == ["mtsg.v1.EventService", "mtsg.v1.ThreatSignalService"]
        async with grpc.aio.insecure_channel(running.target) as channel:
            health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            versions = await policy_service_pb2_grpc.PolicyServiceStub(channel).ListPolicyVersions(
                policy_service_pb2.ListPolicyVersionsRequest()
            )
            assert len(versions.policies) >= 1  # the shipped policy, stored at start
            reflection = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])
            )
            names = {service.name for service in (await reflection.read()).list_services_response.service}
            assert {"mtsg.v1.PolicyService", "mtsg.v1.BlocklistService", "mtsg.v1.CommandFeedService"} <= names
            unknown = channel.unary_unary("/mtsg.v1.PolicyService/NoSuchMethod")
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await unknown(b"")
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await running.stop(grace=1.0)
