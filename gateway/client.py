"""A small typed client for the gateway: the one place the CLI and the tests call it from.

It wraps a grpc.aio channel; errors surface as ``grpc.aio.AioRpcError``, and
``field_violations`` reads the BadRequest details out of one, ``request_id_of`` the id to quote.

``check_login_by_digest`` is the SDK side of inventory by digest (docs/INVENTORY_DIGEST.md), as a
banking app would do it: the list goes once, then only its digest while the gateway holds it.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from types import TracebackType

import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from gateway.errors import ERROR_DOMAIN, REQUEST_ID_KEY, details_of
from gateway.generated.mtsg.v1 import (
    blocklist_service_pb2_grpc,
    command_feed_service_pb2_grpc,
    event_service_pb2,
    event_service_pb2_grpc,
    policy_service_pb2_grpc,
    telemetry_pb2,
    threat_signal_service_pb2,
    threat_signal_service_pb2_grpc,
)
from gateway.login.inventory_digest import inventory_digest
from gateway.security.client_credentials import ClientCredentials

DEFAULT_TARGET = "127.0.0.1:50051"


class MtsgClient:
    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float = 10.0,
        max_message_bytes: int = 64 << 20,
        credentials: ClientCredentials | None = None,
        held_digests: MutableMapping[str, str] | None = None,
    ):
        self._channel = (credentials or ClientCredentials()).channel(
            target,
            options=[
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.max_receive_message_length", max_message_bytes),
            ],
        )
        self._timeout = timeout
        self._threat_signal = threat_signal_service_pb2_grpc.ThreatSignalServiceStub(self._channel)
        self._events = event_service_pb2_grpc.EventServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        # The admin surface is wide and plain request/response: callers use the stub with ``timeout``.
        self.blocklist = blocklist_service_pb2_grpc.BlocklistServiceStub(self._channel)
        self.policy = policy_service_pb2_grpc.PolicyServiceStub(self._channel)
        # Core banking's pull: Subscribe streams, so it has no single deadline.
        self.commands = command_feed_service_pb2_grpc.CommandFeedServiceStub(self._channel)
        # device_id -> the inventory digest the gateway last said it holds for that device.
        self.held_digests: MutableMapping[str, str] = {} if held_digests is None else held_digests

    @property
    def timeout(self) -> float:
        return self._timeout

    async def __aenter__(self) -> MtsgClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def check_login(
        self, telemetry: telemetry_pb2.LoginTelemetry, *, request_id: str = ""
    ) -> threat_signal_service_pb2.CheckLoginResponse:
        return await self.check_login_request(
            threat_signal_service_pb2.CheckLoginRequest(request_id=request_id, telemetry=telemetry)
        )

    async def check_login_request(
        self, request: threat_signal_service_pb2.CheckLoginRequest
    ) -> threat_signal_service_pb2.CheckLoginResponse:
        return await self._threat_signal.CheckLogin(request, timeout=self._timeout)

    async def check_login_by_digest(
        self, telemetry: telemetry_pb2.LoginTelemetry, *, request_id: str = ""
    ) -> threat_signal_service_pb2.CheckLoginResponse:
        """``check_login`` sending the inventory by digest: the whole list only when the gateway does not
        hold it yet, and again, with the same request_id and nonce, when it answers INVENTORY_UNKNOWN.

        ``telemetry`` carries the whole list as today; its running and foreground flags travel in
        ``app_activity``, so they never change the digest.
        """
        full = with_inventory_digest(telemetry)
        device = telemetry.device_id
        if self.held_digests.get(device) == full.inventory_digest:
            short = telemetry_pb2.LoginTelemetry()
            short.CopyFrom(full)
            short.ClearField("installed_apps")
            try:
                return self._remember(device, await self.check_login(short, request_id=request_id))
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.FAILED_PRECONDITION or error_reason(error) != "INVENTORY_UNKNOWN":
                    raise
                self.held_digests.pop(device, None)
        return self._remember(device, await self.check_login(full, request_id=request_id))

    def _remember(
        self, device_id: str, response: threat_signal_service_pb2.CheckLoginResponse
    ) -> threat_signal_service_pb2.CheckLoginResponse:
        if response.inventory_digest:
            self.held_digests[device_id] = response.inventory_digest
        return response

    async def report_phone_number_changes(
        self, changes: Sequence[event_service_pb2.PhoneNumberChange], *, request_id: str = ""
    ) -> event_service_pb2.ReportPhoneNumberChangeResponse:
        request = event_service_pb2.ReportPhoneNumberChangeRequest(request_id=request_id, changes=list(changes))
        return await self._events.ReportPhoneNumberChange(request, timeout=self._timeout)

    async def health(self, service: str = "") -> health_pb2.HealthCheckResponse.ServingStatus.ValueType:
        response = await self._health.Check(health_pb2.HealthCheckRequest(service=service), timeout=self._timeout)
        return response.status


def with_inventory_digest(
    telemetry: telemetry_pb2.LoginTelemetry, digest: str | None = None
) -> telemetry_pb2.LoginTelemetry:
    """A copy of ``telemetry`` with its inventory's digest, and its apps' activity in ``app_activity``.

    ``digest``: the inventory's, when the caller knows it already (only activity changed since).
    """
    sent = telemetry_pb2.LoginTelemetry()
    sent.CopyFrom(telemetry)
    apps = sent.installed_apps
    activity = sent.app_activity
    activity.running_packages[:] = sorted(
        {app.package_name for app in apps if app.running}.union(activity.running_packages)
    )
    activity.foreground_packages[:] = sorted(
        {app.package_name for app in apps if app.foreground}.union(activity.foreground_packages)
    )
    sent.inventory_digest = inventory_digest(apps) if digest is None else digest
    return sent


def field_violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    """(field, description) pairs from the error's google.rpc.BadRequest detail, if it has one."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return []
    bad_requests = details_of(status, error_details_pb2.BadRequest)
    return [(violation.field, violation.description) for bad in bad_requests for violation in bad.field_violations]


def error_reason(error: grpc.aio.AioRpcError) -> str | None:
    """The error's ErrorInfo reason ("NONCE_REUSED"): what to branch on, listed in proto/mtsg/v1/error_reason.proto.

    None when the error has none: it came from grpc itself (a deadline the client set, a
    connection that failed), not from the gateway.
    """
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return None
    infos = details_of(status, error_details_pb2.ErrorInfo)
    return infos[0].reason if infos and infos[0].domain == ERROR_DOMAIN else None


def request_id_of(error: grpc.aio.AioRpcError) -> str | None:
    """The id the gateway gave the failed call, to quote to its operators; None when no gateway answered."""
    for key, value in error.trailing_metadata() or ():
        if key == REQUEST_ID_KEY and isinstance(value, str):
            return value
    return None
