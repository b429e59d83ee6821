"""Health, reflection, metrics and request ids on a running gateway."""

from __future__ import annotations

import contextlib
import platform
import time
from importlib import metadata

import grpc
import httpx
import pytest
import structlog.testing
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from prometheus_client.parser import text_string_to_metric_families

from blocklists.entry import Category, Indicator, KeyType
from gateway.client import MtsgClient
from gateway.policy.knowledge import shipped_policy_document
from gateway.server.start import RunningGateway
from tests.helpers import app, request, telemetry


async def test_health_reports_serving_overall_and_per_service(client: MtsgClient) -> None:
    assert await client.health() == health_pb2.HealthCheckResponse.SERVING
    assert await client.health("mtsg.v1.ThreatSignalService") == health_pb2.HealthCheckResponse.SERVING
    assert await client.health("mtsg.v1.EventService") == health_pb2.HealthCheckResponse.SERVING


async def test_health_turns_not_serving_when_shutdown_starts(gateway: RunningGateway) -> None:
    async with grpc.aio.insecure_channel(gateway.target) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        await gateway.health.enter_graceful_shutdown()
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()


async def test_reflection_lists_the_services(gateway: RunningGateway) -> None:
    async with grpc.aio.insecure_channel(gateway.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        response = await call.read()
        names = {service.name for service in response.list_services_response.service}
        call2 = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol="mtsg.v1.ThreatSignalService")])
        )
        files = (await call2.read()).file_descriptor_response.file_descriptor_proto
    assert {"mtsg.v1.ThreatSignalService", "mtsg.v1.EventService", "grpc.health.v1.Health"} <= names
    assert files  # the descriptor is served, so grpcurl-like tools can call the gateway without the .proto files


async def test_metrics_count_calls_by_code_and_verdicts_by_action(client: MtsgClient, gateway: RunningGateway) -> None:
    await client.check_login(
        telemetry(installed_apps=[app("com.anydesk.anydeskandroid", running=True)], call={"active_call": True})
    )
    await client.check_login(telemetry())
    with contextlib.suppress(grpc.aio.AioRpcError):
        await client.check_login(telemetry(customer_id=""))
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics")).text
    method = "/mtsg.v1.ThreatSignalService/CheckLogin"
    assert f'mtsg_rpc_requests_total{{code="OK",method="{method}"}} 2.0' in text
    assert f'mtsg_rpc_requests_total{{code="INVALID_ARGUMENT",method="{method}"}} 1.0' in text
    assert f'mtsg_rpc_refusals_total{{method="{method}",reason="INVALID_TELEMETRY"}} 1.0' in text
    assert 'mtsg_verdicts_total{action="ACTION_FREEZE"} 1.0' in text
    assert 'mtsg_verdicts_total{action="ACTION_ALLOW"} 1.0' in text
    assert f'mtsg_rpc_duration_seconds_count{{code="OK",method="{method}"}} 2.0' in text


async def test_request_id_from_the_caller_comes_back_in_trailers(gateway: RunningGateway) -> None:
    from gateway.generated.mtsg.v1 import threat_signal_service_pb2_grpc

    async with grpc.aio.insecure_channel(gateway.target) as channel:
        stub = threat_signal_service_pb2_grpc.ThreatSignalServiceStub(channel)
        call = stub.CheckLogin(request(telemetry()), metadata=(("x-request-id", "trace-123"),))
        await call
        trailers = dict(await call.trailing_metadata())
        assert trailers["x-request-id"] == "trace-123"
        anonymous = stub.CheckLogin(request(telemetry()))
        await anonymous
        assert len(dict(await anonymous.trailing_metadata())["x-request-id"]) == 32


async def test_a_refused_login_keeps_its_request_id_beside_the_error_details(gateway: RunningGateway) -> None:
    """The id to quote matters most on an error: the details grpc carries in trailers must not push it out."""
    from gateway.generated.mtsg.v1 import threat_signal_service_pb2_grpc

    async with grpc.aio.insecure_channel(gateway.target) as channel:
        stub = threat_signal_service_pb2_grpc.ThreatSignalServiceStub(channel)
        call = stub.CheckLogin(request(telemetry(customer_id="")), metadata=(("x-request-id", "trace-bad-1"),))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(refused.value.trailing_metadata())["x-request-id"] == "trace-bad-1"
    status = rpc_status.from_call(refused.value)  # type: ignore[arg-type]
    assert status is not None and any(detail.Is(error_details_pb2.BadRequest.DESCRIPTOR) for detail in status.details)


async def test_a_refused_calls_log_line_says_why_without_quoting_the_telemetry(client: MtsgClient) -> None:
    """Operators read why calls are refused from the log: the reason and the fields, never the values sent."""
    secret_hash = "not-a-hash-but-something-the-phone-sent"
    apps = [app(f"com.example.app{index}", apk_sha256=secret_hash) for index in range(14)]
    with structlog.testing.capture_logs() as logs:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.check_login(telemetry(installed_apps=apps))
        await client.check_login(telemetry())
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    refused_line, answered_line = [line for line in logs if line["event"] == "rpc"]
    assert refused_line["code"] == "INVALID_ARGUMENT" and refused_line["reason"] == "INVALID_TELEMETRY"
    assert refused_line["fields"] == [f"telemetry.installed_apps[{index}].apk_sha256" for index in range(10)]
    assert refused_line["field_count"] == 14
    assert secret_hash not in str(logs)
    assert answered_line["code"] == "OK" and "reason" not in answered_line and "fields" not in answered_line


async def test_unknown_methods_stay_unimplemented_beside_the_kept_handlers(
    client: MtsgClient, gateway: RunningGateway
) -> None:
    """The interceptor keeps one wrapped handler per known method; a name nobody serves is refused every time."""
    async with grpc.aio.insecure_channel(gateway.target) as channel:
        for attempt in range(4):
            unknown = channel.unary_unary(f"/mtsg.v1.NoSuchService/Call{attempt % 2}")
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await unknown(b"")
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
            await client.check_login(telemetry())
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics")).text
    method = "/mtsg.v1.ThreatSignalService/CheckLogin"
    assert f'mtsg_rpc_requests_total{{code="OK",method="{method}"}} 4.0' in text
    assert "NoSuchService" not in text


async def test_metrics_show_the_blocklist_and_policy_versions_in_force(gateway: RunningGateway) -> None:
    """Replicas that disagree (one still on an old build's policy, one whose refresh fails) show it on /metrics."""

    async def versions() -> tuple[float, float]:
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics")).text
        figures = {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name.endswith("_version_in_force")
        }
        return figures["mtsg_blocklist_version_in_force"], figures["mtsg_policy_version_in_force"]

    assert await versions() == (0.0, 1.0)  # an empty registry, the shipped policy
    indicator = Indicator(KeyType.PACKAGE_NAME, "com.metrics.version", Category.VOICE_PHISHING, source="test")
    await gateway.store.blocklist.add_entry(indicator, "test", time.time())
    document = shipped_policy_document().replace("Freeze on", "Versioned: freeze on", 1)
    await gateway.store.policies.apply(document, actor="test", comment="", at=time.time())
    await gateway.refresher.refresh()
    await gateway.policy_refresher.refresh()
    assert await versions() == (1.0, 2.0)

    # A newer build applied a policy this one cannot read (a finding code it does not know): this
    # gateway keeps deciding with version 2 and must say so, or MtsgReplicasDisagreeOnPolicy never fires.
    from_a_newer_build = shipped_policy_document().replace('{ code = "ACTIVE_CALL" }', '{ code = "NEW_SIGNAL" }', 1)
    assert from_a_newer_build != shipped_policy_document()
    # The apply's NOTIFY may wake the gateway's own refresher before this test asks: either one says it.
    with structlog.testing.capture_logs() as logs:
        await gateway.store.policies.apply(from_a_newer_build, actor="newer build", comment="", at=time.time())
        assert await gateway.policy_refresher.refresh() is False
    assert "policy version not valid for this build; keeping the current one" in [line["event"] for line in logs]
    with structlog.testing.capture_logs() as logs:
        assert await gateway.policy_refresher.refresh() is False
    assert logs == []  # said once, not every round
    assert await versions() == (1.0, 2.0)
    assert gateway.policy_refresher.version == 2
    async with MtsgClient(gateway.target) as client:
        assert (await client.check_login(telemetry())).policy_version == "2"


async def test_metrics_name_the_build(gateway: RunningGateway) -> None:
    """During a rolling upgrade an operator asks each replica which build it runs."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics")).text
    expected = f'mtsg_build_info{{python="{platform.python_version()}",version="{metadata.version("mtsg")}"}} 1.0'
    assert expected in text.splitlines()
