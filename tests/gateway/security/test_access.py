"""TLS, mTLS, bearer tokens and roles on a real gateway: every service against every role."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from gateway.client import MtsgClient
from gateway.generated.mtsg.v1 import (
    blocklist_service_pb2,
    command_feed_service_pb2,
    policy_service_pb2,
)
from gateway.security.client_credentials import ClientCredentials
from gateway.security.identities import ROLES, new_token, token_stanza
from gateway.server.start import RunningGateway, start_gateway
from tests.certificates import IssuedFiles, TestAuthority
from tests.helpers import gateway_config, package_entry_request, phone_change, request, telemetry

Call = Callable[[MtsgClient], Awaitable[Any]]
REFUSALS = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAVAILABLE)

# One representative call per service, and the role that service needs.
SERVICE_CALLS: dict[str, tuple[str, Call]] = {
    "ThreatSignalService": ("app", lambda c: c.check_login_request(request(telemetry()))),
    "EventService": ("telco", lambda c: c.report_phone_number_changes([phone_change("cust-1")])),
    "BlocklistService": (
        "secops",
        lambda c: c.blocklist.GetStatus(blocklist_service_pb2.GetStatusRequest(), timeout=5),
    ),
    "PolicyService": ("secops", lambda c: c.policy.GetPolicy(policy_service_pb2.GetPolicyRequest(), timeout=5)),
    "CommandFeedService": (
        "core",
        lambda c: c.commands.Ack(command_feed_service_pb2.AckRequest(consumer_id="core", cursor=0), timeout=5),
    ),
}


@dataclass
class SecuredGateway:
    running: RunningGateway
    authority: TestAuthority
    tokens: dict[str, str]  # role -> token
    identities_file: Path
    core_client_cert: IssuedFiles

    def client(self, token: str = "", cert: IssuedFiles | None = None, ca: Path | None = None) -> MtsgClient:
        credentials = ClientCredentials(
            ca_file=ca or self.authority.cert,
            cert_file=cert.cert if cert else None,
            key_file=cert.key if cert else None,
            token=token,
        )
        return MtsgClient(f"localhost:{self.running.port}", timeout=5, credentials=credentials)


def _identities(tokens: dict[str, str]) -> str:
    stanzas = [token_stanza(f"{role}-caller", [role], token) for role, token in tokens.items()]
    stanzas.append('[[certificate]]\nname = "core-banking"\nroles = ["core"]\ncommon_name = "core-banking"\n')
    return "\n".join(stanzas)


async def _secured(tmp_path: Path, *, mtls: bool = False) -> SecuredGateway:
    authority = TestAuthority(tmp_path / "pki")
    server = authority.server()
    tokens = {role: new_token() for role in ROLES}
    identities = tmp_path / "identities.toml"
    identities.write_text(_identities(tokens))
    config = gateway_config(
        tmp_path,
        auth__insecure="false",
        auth__identities_file=str(identities),
        server__tls_cert_file=str(server.cert),
        server__tls_key_file=str(server.key),
        server__tls_client_ca_file=str(authority.cert) if mtls else "",
        server__health_listen="127.0.0.1:0",
    )
    running = await start_gateway(config)
    return SecuredGateway(running, authority, tokens, identities, authority.issue("core-banking", client=True))


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[SecuredGateway]:
    """TLS, callers named by bearer tokens."""
    gateway = await _secured(tmp_path)
    yield gateway
    await gateway.running.stop(grace=1.0)


@pytest.fixture
async def mtls(tmp_path: Path) -> AsyncIterator[SecuredGateway]:
    """TLS with client certificates required."""
    gateway = await _secured(tmp_path, mtls=True)
    yield gateway
    await gateway.running.stop(grace=1.0)


async def _code(call: Call, client: MtsgClient) -> grpc.StatusCode:
    try:
        await call(client)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("service", sorted(SERVICE_CALLS))
@pytest.mark.parametrize("role", ROLES)
async def test_each_service_admits_only_its_role(secured: SecuredGateway, service: str, role: str) -> None:
    needed, call = SERVICE_CALLS[service]
    async with secured.client(token=secured.tokens[role]) as client:
        code = await _code(call, client)
    if role == needed:
        assert code not in REFUSALS  # admitted: what the service then says is its own business
    else:
        assert code == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("service", sorted(SERVICE_CALLS))
async def test_every_service_refuses_a_caller_without_credentials(secured: SecuredGateway, service: str) -> None:
    _, call = SERVICE_CALLS[service]
    async with secured.client() as anonymous, secured.client(token=new_token()) as forged:
        assert await _code(call, anonymous) == grpc.StatusCode.UNAUTHENTICATED
        assert await _code(call, forged) == grpc.StatusCode.UNAUTHENTICATED


async def test_refusals_are_counted_and_explain_themselves(secured: SecuredGateway) -> None:
    async with secured.client(token=secured.tokens["app"]) as app:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await app.policy.GetPolicy(policy_service_pb2.GetPolicyRequest(), timeout=5)
    assert "app-caller may not call mtsg.v1.PolicyService: it needs the role 'secops'" in str(refused.value.details())
    async with secured.client(token="mtsg_not-a-real-token") as forged:
        with pytest.raises(grpc.aio.AioRpcError):
            await forged.policy.GetPolicy(policy_service_pb2.GetPolicyRequest(), timeout=5)
    rejections = secured.running.metrics.auth_rejections
    assert rejections.labels(reason="missing_role")._value.get() == 1
    assert rejections.labels(reason="invalid_token")._value.get() == 1


async def test_health_is_open_and_reflection_needs_an_identity(secured: SecuredGateway) -> None:
    async with secured.client() as anonymous:
        assert await anonymous.health() == 1  # SERVING, no credentials needed by probes
    request_ = reflection_pb2.ServerReflectionRequest(list_services="")
    async with secured.client() as anonymous:
        # Refused before its request is read: nothing is written, so a refusal that comes before the
        # client's write cannot turn into the client's own failed-write error.
        refused = reflection_pb2_grpc.ServerReflectionStub(anonymous._channel).ServerReflectionInfo(timeout=5)
        assert await refused.code() == grpc.StatusCode.UNAUTHENTICATED
    async with secured.client(token=secured.tokens["telco"]) as client:
        stub = reflection_pb2_grpc.ServerReflectionStub(client._channel)
        answers = [answer async for answer in stub.ServerReflectionInfo(iter([request_]), timeout=5)]
        assert "mtsg.v1.ThreatSignalService" in str(answers[0])


async def test_probes_get_health_in_plain_text_on_their_own_port_and_nothing_else(mtls: SecuredGateway) -> None:
    assert mtls.running.health_port is not None
    async with MtsgClient(f"127.0.0.1:{mtls.running.health_port}", timeout=5) as probe:
        assert await probe.health() == 1  # SERVING, no TLS, no credentials
        assert await probe.health("mtsg.v1.ThreatSignalService") == 1
        assert await _code(SERVICE_CALLS["ThreatSignalService"][1], probe) == grpc.StatusCode.UNIMPLEMENTED
    await mtls.running.stop(grace=1.0)
    async with MtsgClient(f"127.0.0.1:{mtls.running.health_port}", timeout=2) as probe:
        with pytest.raises(grpc.aio.AioRpcError):
            await probe.health()


async def test_a_client_certificate_names_the_core_banking_identity(mtls: SecuredGateway) -> None:
    secured = mtls
    _, ack = SERVICE_CALLS["CommandFeedService"]
    async with secured.client(cert=secured.core_client_cert) as core:
        assert await _code(ack, core) not in REFUSALS
        assert await _code(SERVICE_CALLS["ThreatSignalService"][1], core) == grpc.StatusCode.PERMISSION_DENIED
    stranger = secured.authority.issue("someone-else", client=True)
    async with secured.client(cert=stranger) as client:
        assert await _code(ack, client) == grpc.StatusCode.UNAUTHENTICATED
        # A bearer token names the caller even over a connection with another certificate.
        assert await _code(SERVICE_CALLS["PolicyService"][1], client) == grpc.StatusCode.UNAUTHENTICATED
    async with secured.client(cert=stranger, token=secured.tokens["secops"]) as client:
        assert await _code(SERVICE_CALLS["PolicyService"][1], client) == grpc.StatusCode.OK
    rogue_authority = TestAuthority(secured.identities_file.parent / "rogue", "rogue CA")
    forged = rogue_authority.issue("core-banking", client=True)
    async with secured.client(cert=forged) as client:  # the right name from the wrong CA: no handshake
        assert await _code(ack, client) == grpc.StatusCode.UNAVAILABLE
    async with secured.client(token=secured.tokens["core"]) as client:  # a token alone is not enough here
        assert await _code(ack, client) == grpc.StatusCode.UNAVAILABLE


async def test_the_audit_trail_names_the_authenticated_caller(secured: SecuredGateway) -> None:
    async with secured.client(token=secured.tokens["secops"]) as secops:
        added = await secops.blocklist.AddEntry(package_entry_request("com.evil.loan", "FakeLoan"), timeout=5)
    assert added.entry.created_by.startswith("secops-caller (token) from ipv4:127.0.0.1:")


async def test_plain_text_cannot_reach_a_tls_port(secured: SecuredGateway) -> None:
    async with MtsgClient(secured.running.target, timeout=3) as plain:
        assert await _code(SERVICE_CALLS["BlocklistService"][1], plain) == grpc.StatusCode.UNAVAILABLE


async def test_a_new_token_and_a_renewed_certificate_take_effect_without_a_restart(
    secured: SecuredGateway, tmp_path: Path
) -> None:
    newcomer = new_token()
    with secured.identities_file.open("a") as handle:
        handle.write("\n" + token_stanza("second-app", ["app"], newcomer))
    check_login = SERVICE_CALLS["ThreatSignalService"][1]
    async with secured.client(token=newcomer) as client:
        for _ in range(50):
            if await _code(check_login, client) == grpc.StatusCode.OK:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the token added to the identities file was never admitted")

    expiry = "mtsg_tls_certificate_expiry_timestamp_seconds"
    first_expiry = secured.running.metrics.registry.get_sample_value(expiry)
    assert first_expiry is not None and 0 < first_expiry - time.time() <= 86400  # the one-day certificate
    renewed_authority = TestAuthority(tmp_path / "renewed", "renewed CA")
    renewed = renewed_authority.server("gateway-renewed", days=90)
    tls = secured.running.config.server
    shutil.copy(renewed.key, tls.tls_key_file)
    shutil.copy(renewed.cert, tls.tls_cert_file)
    await asyncio.sleep(1.1)  # the files are looked at no more than once a second
    token = secured.tokens["app"]
    async with secured.client(token=token, ca=renewed_authority.cert) as client:
        assert await _code(check_login, client) == grpc.StatusCode.OK
    assert secured.running.tls is not None and secured.running.tls.reloads == 1
    renewed_expiry = secured.running.metrics.registry.get_sample_value(expiry)
    assert renewed_expiry is not None and 89 * 86400 < renewed_expiry - time.time() <= 90 * 86400


async def test_a_broken_identities_file_keeps_the_previous_one(secured: SecuredGateway) -> None:
    secured.identities_file.write_text("[[token]]\nname = 'half-written")
    await asyncio.sleep(1.1)
    async with secured.client(token=secured.tokens["app"]) as client:
        assert await _code(SERVICE_CALLS["ThreatSignalService"][1], client) == grpc.StatusCode.OK
