"""ThreatSignalService.CheckLogin: validate, load history, evaluate, record with its command, answer."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import structlog

from gateway.commands.building import command_for_verdict
from gateway.errors import abort_with, invalid_argument, unavailable
from gateway.generated.mtsg.v1 import common_pb2, threat_signal_service_pb2, threat_signal_service_pb2_grpc
from gateway.metrics import Metrics
from gateway.store import Store, StoreUnavailableError
from gateway.store.records import HistoryWindows, LoginLocation, LoginRecord, ShadowFiring, StoredVerdict
from gateway.validation import FieldViolation, InvalidRequestError, Limits, parse_check_login
from gateway.verdicts import new_verdict_id, to_response
from gateway.wakeup import Wakeup
from signals.context import LoginContext
from signals.detector_settings import DetectorSettings
from signals.evaluate import Knowledge, evaluate
from signals.inventory import pack_inventory
from signals.telemetry import LoginTelemetry

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class LoginSettings:
    limits: Limits
    phone_change_window_seconds: float
    # Webhook endpoints each FREEZE/STEP_UP command is queued for.
    command_endpoints: tuple[str, ...] = ()


def _location_record(telemetry: LoginTelemetry) -> LoginLocation | None:
    location = telemetry.location
    if location is None and not telemetry.client_ip:
        return None
    return LoginLocation(
        latitude=location.latitude if location else None,
        longitude=location.longitude if location else None,
        accuracy_meters=location.accuracy_meters if location else None,
        source=location.source if location else "",
        client_ip=telemetry.client_ip,
        country_code=location.country_code if location else "",
    )


def _windows(now: float, settings: LoginSettings, detectors: DetectorSettings) -> HistoryWindows:
    return HistoryWindows(
        phone_changes_since=now - settings.phone_change_window_seconds,
        locations_since=now - detectors.location_history_days * 86400,
        location_limit=detectors.location_history_logins,
        shared_device_since=now - detectors.shared_device_window_days * 86400,
    )


class ThreatSignalService(threat_signal_service_pb2_grpc.ThreatSignalServiceServicer):
    def __init__(
        self,
        store: Store,
        knowledge: Callable[[], Knowledge],
        settings: LoginSettings,
        metrics: Metrics,
        clock: Callable[[], float],
        wakeup: Wakeup,
    ) -> None:
        self._store = store
        self._wakeup = wakeup
        self._knowledge = knowledge
        self._settings = settings
        self._metrics = metrics
        self._clock = clock

    async def CheckLogin(
        self, request: threat_signal_service_pb2.CheckLoginRequest, context: grpc.aio.ServicerContext
    ) -> threat_signal_service_pb2.CheckLoginResponse:
        now = self._clock()
        try:
            request_id, telemetry = parse_check_login(request, self._settings.limits, now)
        except InvalidRequestError as error:
            await abort_with(context, invalid_argument(error, "INVALID_TELEMETRY"))
        fingerprint = hashlib.sha256(request.SerializeToString(deterministic=True)).digest()
        try:
            if request_id is not None:
                earlier = await self._store.find_verdict(request_id)
                if earlier is not None:
                    return await self._replay(earlier, fingerprint, context)
            response, shadow = await self._decide(telemetry, now)
            command = command_for_verdict(response, telemetry.customer_id, self._settings.command_endpoints)
            stored = await self._store.record_login(
                LoginRecord(
                    verdict_id=response.verdict_id,
                    request_id=request_id,
                    request_fingerprint=fingerprint,
                    customer_id=telemetry.customer_id,
                    device_id=telemetry.device_id,
                    action=common_pb2.Action.Name(response.action),
                    decided_at=now,
                    response=response.SerializeToString(),
                    location=_location_record(telemetry),
                    command=command,
                    inventory=pack_inventory(app.package_name for app in telemetry.installed_apps),
                    shadow=shadow,
                    policy_version=response.policy_version,
                )
            )
        except StoreUnavailableError as error:
            log.error("store unavailable", error=str(error))
            await abort_with(context, unavailable("the gateway's store is unavailable; retry with the same request_id"))
        if stored.verdict_id != response.verdict_id:  # a concurrent retry stored first
            return await self._replay(stored, fingerprint, context)
        self._metrics.verdicts.labels(action=common_pb2.Action.Name(response.action)).inc()
        if command is not None:
            self._metrics.commands_created.labels(type=command.type).inc()
            self._wakeup.notify()
        return response

    async def _decide(
        self, telemetry: LoginTelemetry, now: float
    ) -> tuple[threat_signal_service_pb2.CheckLoginResponse, tuple[ShadowFiring, ...]]:
        knowledge = self._knowledge()  # one snapshot: the policy that sized the history also decides
        history = await self._store.load_login_history(
            telemetry.customer_id, telemetry.device_id, _windows(now, self._settings, knowledge.policy.detectors)
        )
        context = LoginContext(
            now=now,
            known_device_ids=history.known_device_ids,
            recent_phone_change=history.latest_phone_change,
            recent_locations=history.recent_locations,
            other_customers_on_device=history.other_customers_on_device,
            previous_inventory=history.previous_inventory,
        )
        decision = evaluate(telemetry, context, knowledge)
        shadow = tuple(ShadowFiring(fired.scenario_id, f"ACTION_{fired.action.name}") for fired in decision.shadow)
        response = to_response(decision, new_verdict_id(now), now, blocklist_version=str(knowledge.blocklist.version))
        return response, shadow

    async def _replay(
        self, earlier: StoredVerdict, fingerprint: bytes, context: grpc.aio.ServicerContext
    ) -> threat_signal_service_pb2.CheckLoginResponse:
        if earlier.request_fingerprint != fingerprint:
            violation = FieldViolation("request_id", "was already used for a different request; use a new request_id")
            await abort_with(context, invalid_argument(InvalidRequestError([violation]), "REQUEST_ID_REUSED"))
        return threat_signal_service_pb2.CheckLoginResponse.FromString(earlier.response)
