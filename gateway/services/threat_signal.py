"""ThreatSignalService.CheckLogin: validate, throttle, load history, evaluate, record with its command, answer.

Guards around the brain: a replayed nonce is refused before anything is stored, a
device or customer sending too fast gets RESOURCE_EXHAUSTED with a retry hint, a store
that does not answer within the login's budget gets the configured fail mode (STEP_UP
by default) instead of a hung call, and a FREEZE beyond the safety valve's cap is
degraded to STEP_UP.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import grpc
import structlog
from google.protobuf.message import Message

from gateway.commands.building import command_for_verdict
from gateway.config import Config, LoginConfig
from gateway.errors import abort_with, failure, invalid_argument, resource_exhausted, unavailable
from gateway.generated.mtsg.v1 import common_pb2, threat_signal_service_pb2, threat_signal_service_pb2_grpc
from gateway.generated.mtsg.v1.error_reason_pb2 import (
    ERROR_REASON_CUSTOMER_RATE_LIMITED,
    ERROR_REASON_DEVICE_RATE_LIMITED,
    ERROR_REASON_INVALID_TELEMETRY,
    ERROR_REASON_INVENTORY_UNKNOWN,
    ERROR_REASON_NONCE_REUSED,
    ERROR_REASON_REQUEST_ID_REUSED,
)
from gateway.login.checked_apps import CheckedApps
from gateway.login.held_inventories import HeldApps, HeldInventories, unpack_held_apps, with_activity
from gateway.login.inventory_claim import InventoryClaim
from gateway.login.validation import Limits, check_apps, parse_check_login
from gateway.login.verdicts import degraded_freeze, fail_safe_response, new_verdict_id, to_response
from gateway.login.wire import decode_check_login
from gateway.observability.metrics import LOGIN_STAGES, Metrics
from gateway.privacy.pseudonyms import pseudonym
from gateway.runtime.wakeup import Wakeup
from gateway.security.rate_limits import TokenBuckets
from gateway.store import Store, StoreUnavailableError
from gateway.store.errors import NonceReusedError
from gateway.store.records import HistoryWindows, LoginHistory, LoginLocation, LoginRecord, ShadowFiring, StoredVerdict
from gateway.violations import FieldViolation, InvalidRequestError, Violations
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
    # The webhook endpoints each FREEZE/STEP_UP command is queued for now: every one the installation pushes to.
    command_endpoints: Callable[[], Sequence[str]] = tuple
    store_timeout_seconds: float = 2.0
    # "step_up" or "unavailable" when the store cannot be used.
    fail_mode: str = "step_up"
    max_freezes_per_minute: int = 100
    # Installed apps kept already checked (gateway.login.checked_apps); 0 keeps none.
    app_cache_entries: int = 20_000
    # ...and at most this much memory (gateway.login.checked_apps.kept_cost).
    app_cache_bytes: int = 32 * 1024 * 1024
    # Inventories kept in memory by digest (gateway.login.held_inventories); 0 keeps none.
    held_inventory_bytes: int = 128 * 1024 * 1024

    @classmethod
    def of(cls, config: Config, command_endpoints: Callable[[], Sequence[str]]) -> LoginSettings:
        """What a configuration sets for CheckLogin; ``command_endpoints`` says where commands go now."""
        login = config.login
        return cls(
            Limits.of(config),
            config.signals.phone_change_window_hours * 3600.0,
            command_endpoints,
            store_timeout_seconds=login.store_timeout_seconds,
            fail_mode=login.fail_mode,
            max_freezes_per_minute=login.max_freezes_per_minute,
            app_cache_entries=login.app_cache_entries,
            app_cache_bytes=login.app_cache_bytes,
            held_inventory_bytes=login.held_inventory_bytes,
        )


@dataclass(frozen=True, slots=True)
class LoginThrottle:
    """Per-device and per-customer token buckets (gateway.server.rate_limits)."""

    devices: TokenBuckets
    customers: TokenBuckets

    @classmethod
    def of(cls, login: LoginConfig) -> LoginThrottle:
        return cls(
            TokenBuckets(login.device_logins_per_minute, login.device_login_burst),
            TokenBuckets(login.customer_logins_per_minute, login.customer_login_burst),
        )


@dataclass(frozen=True, slots=True)
class _LoginIdentity:
    """What tells one login request from another: its idempotency key, its bytes' digest, its nonce."""

    request_id: str | None
    fingerprint: bytes
    nonce: str
    # What the login said of its inventory by digest, if it used one.
    inventory: InventoryClaim | None = None


class _InventoryUnknownError(Exception):
    """A login sent a digest alone that the store does not hold for its device."""


# Kept back from the client's deadline for the answer to travel.
_DEADLINE_MARGIN_SECONDS = 0.05


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
        throttle: LoginThrottle,
    ) -> None:
        self._store = store
        self._throttle = throttle
        self._wakeup = wakeup
        self._knowledge = knowledge
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._stage = {stage: metrics.login_stage.labels(stage=stage) for stage in LOGIN_STAGES}
        lookups = metrics.app_cache_lookups
        self._checked_apps = CheckedApps(
            settings.limits,
            settings.app_cache_entries,
            lookups.labels(result="hit"),
            lookups.labels(result="miss"),
            max_bytes=settings.app_cache_bytes,
        )
        metrics.app_cache_entries.set_function(lambda: len(self._checked_apps))
        metrics.app_cache_bytes.set_function(lambda: self._checked_apps.kept_bytes)
        self._held = HeldInventories(settings.held_inventory_bytes)
        metrics.held_inventory_bytes.set_function(lambda: self._held.held_bytes)
        held_lookups = metrics.held_inventory_lookups
        self._held_found = {result: held_lookups.labels(result=result) for result in ("memory", "store", "unknown")}

    async def CheckLogin(
        self, request: Message, context: grpc.aio.ServicerContext
    ) -> threat_signal_service_pb2.CheckLoginResponse:
        """``request`` is the wire form of CheckLoginRequest, its apps as bytes (``add_to_server``)."""
        now = self._clock()
        started = time.perf_counter()
        try:
            parsed = parse_check_login(request, self._settings.limits, now, self._checked_apps)
        except InvalidRequestError as error:
            await abort_with(context, invalid_argument(error, ERROR_REASON_INVALID_TELEMETRY))
        telemetry = parsed.telemetry
        self._stage["validate"].observe(time.perf_counter() - started)
        await self._admit(telemetry, context)
        fingerprint = hashlib.sha256(request.SerializeToString(deterministic=True)).digest()
        try:
            async with asyncio.timeout(self._store_budget(context)):
                identity = _LoginIdentity(parsed.request_id, fingerprint, request.telemetry.nonce, parsed.inventory)
                return await self._check(identity, telemetry, now, context)
        except (StoreUnavailableError, TimeoutError) as error:
            return await self._fail_mode(error, now, context)
        except _InventoryUnknownError:
            self._held_found["unknown"].inc()
            await abort_with(
                context,
                failure(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "the gateway holds no inventory under this inventory_digest for this device:"
                    " send the same request again with installed_apps",
                    ERROR_REASON_INVENTORY_UNKNOWN,
                ),
            )
        except NonceReusedError:
            self._metrics.rate_limited.labels(limit="replay").inc()
            log.warning("replayed login refused", device=pseudonym(telemetry.device_id))
            violation = FieldViolation(
                "telemetry.nonce", "was already used by this device: a replayed login is not evaluated again"
            )
            await abort_with(context, invalid_argument(InvalidRequestError([violation]), ERROR_REASON_NONCE_REUSED))

    async def _check(
        self,
        identity: _LoginIdentity,
        telemetry: LoginTelemetry,
        now: float,
        context: grpc.aio.ServicerContext,
    ) -> threat_signal_service_pb2.CheckLoginResponse:
        knowledge = self._knowledge()  # one snapshot: the policy that sized the history also decides
        started = time.perf_counter()
        history = await self._store.load_login_history(
            telemetry.customer_id,
            telemetry.device_id,
            _windows(now, self._settings, knowledge.policy.detectors),
            identity.request_id,
        )
        self._stage["history"].observe(time.perf_counter() - started)
        if history.earlier_verdict is not None:
            return await self._replay(history.earlier_verdict, identity.fingerprint, context)
        if identity.inventory is not None:
            telemetry = await self._with_held_inventory(telemetry, identity.inventory, history, knowledge, now)
        response, shadow = self._decide(telemetry, history, knowledge, now)
        if identity.inventory is not None:
            response.inventory_digest = identity.inventory.digest
        record = self._record(identity, telemetry, now, response, shadow, history)
        started = time.perf_counter()
        cap = self._settings.max_freezes_per_minute
        if response.action == common_pb2.ACTION_FREEZE and cap:
            held_back = degraded_freeze(response, cap)
            instead = self._record(identity, telemetry, now, held_back, shadow, history)
            outcome = await self._store.record_freeze(record, cap=cap, held_back=instead)
            if outcome.held_back:
                self._valve_held_back(response, outcome.tripped_valve)
                response, record = held_back, instead
            stored = outcome.stored
        else:
            stored = await self._store.record_login(record)
        self._stage["record" if record.command is None else "record_command"].observe(time.perf_counter() - started)
        if stored.verdict_id != response.verdict_id:  # a concurrent retry stored first
            return await self._replay(stored, identity.fingerprint, context)
        self._metrics.verdicts.labels(action=common_pb2.Action.Name(response.action)).inc()
        if record.command is not None:
            self._metrics.commands_created.labels(type=record.command.type).inc()
            self._wakeup.notify()
        return response

    def _record(
        self,
        identity: _LoginIdentity,
        telemetry: LoginTelemetry,
        now: float,
        response: threat_signal_service_pb2.CheckLoginResponse,
        shadow: tuple[ShadowFiring, ...],
        history: LoginHistory,
    ) -> LoginRecord:
        names = telemetry.package_names
        claim = identity.inventory
        previous_inventory = history.previous_inventory
        # A list sent under a digest the store does not hold yet is stored whole, with its digest.
        holds = claim is not None and claim.listed and history.held_digest != claim.digest
        unchanged_at = (
            previous_inventory.observed_at
            if previous_inventory is not None and previous_inventory.package_names == names and not holds
            else None
        )
        return LoginRecord(
            verdict_id=response.verdict_id,
            request_id=identity.request_id,
            request_fingerprint=identity.fingerprint,
            customer_id=telemetry.customer_id,
            device_id=telemetry.device_id,
            action=common_pb2.Action.Name(response.action),
            decided_at=now,
            response=response.SerializeToString(),
            location=_location_record(telemetry),
            command=command_for_verdict(response, telemetry.customer_id, self._settings.command_endpoints()),
            inventory=None if unchanged_at is not None else pack_inventory(names),
            held_digest=claim.digest if holds and claim is not None else None,
            held_apps=claim.stored_form if holds and claim is not None else None,
            unchanged_inventory_at=unchanged_at,
            shadow=shadow,
            policy_version=response.policy_version,
            nonce=identity.nonce,
        )

    async def _with_held_inventory(
        self, telemetry: LoginTelemetry, claim: InventoryClaim, history: LoginHistory, knowledge: Knowledge, now: float
    ) -> LoginTelemetry:
        """The login's telemetry with the inventory its digest names, screened by the registry in force.

        A list sent with its digest is kept for the device's next logins.  A digest sent alone must be
        the one the store holds for this device: the list comes from memory, or else from the store,
        and the apps the login's activity names are marked.  Any other digest raises
        _InventoryUnknownError: the gateway never decides without the inventory.
        """
        running, foreground = claim.running, claim.foreground
        held = self._held.get(claim.digest)
        if claim.listed:
            sent = telemetry.installed_apps
            running |= {app.package_name for app in sent if app.running}
            foreground |= {app.package_name for app in sent if app.foreground}
            held = held or self._held.keep(HeldApps.of(claim.digest, sent))
        elif history.held_digest != claim.digest:
            raise _InventoryUnknownError
        elif held is not None:
            self._held_found["memory"].inc()
        else:
            held = await self._load_held(telemetry.device_id, claim.digest, now)
        # The held list's order, which its screening's positions refer to (a digest does not depend on order).
        apps = with_activity(held.apps, held.positions, running, foreground)
        held.screening = knowledge.blocklist.screen(held.apps, held.screening)
        return replace(telemetry, installed_apps=apps, screening=held.screening, known_package_names=held.package_names)

    async def _load_held(self, device_id: str, digest: str, now: float) -> HeldApps:
        """The device's list read back from the store, checked again, and kept in memory."""
        blob = await self._store.load_held_apps(device_id, digest)
        messages = unpack_held_apps(blob) if blob is not None else None
        if messages is None:
            raise _InventoryUnknownError
        violations, limits = Violations(), self._settings.limits
        apps = check_apps(messages, limits, now + limits.max_clock_skew_seconds, violations)
        if violations.found:  # stored by an older gateway under other limits: the device sends it again
            log.warning("a held inventory no longer passes validation", device=pseudonym(device_id))
            raise _InventoryUnknownError
        self._held_found["store"].inc()
        return self._held.keep(HeldApps.of(digest, apps))

    async def _admit(self, telemetry: LoginTelemetry, context: grpc.aio.ServicerContext) -> None:
        """Take a token from the device's and the customer's bucket, or refuse with when to retry."""
        devices, customers = self._throttle.devices, self._throttle.customers
        for limit, buckets, key, reason in (
            ("device", devices, telemetry.device_id, ERROR_REASON_DEVICE_RATE_LIMITED),
            ("customer", customers, telemetry.customer_id, ERROR_REASON_CUSTOMER_RATE_LIMITED),
        ):
            wait = buckets.wait_for(key)
            if wait > 0:
                self._metrics.rate_limited.labels(limit=limit).inc()
                await abort_with(
                    context,
                    resource_exhausted(
                        f"too many logins from this {limit}; retry in {wait:.1f} s",
                        reason,
                        wait,
                    ),
                )
        devices.take(telemetry.device_id)
        customers.take(telemetry.customer_id)

    def _store_budget(self, context: grpc.aio.ServicerContext) -> float:
        """The store gets its configured time, cut short by the client's deadline so the answer still arrives."""
        budget = self._settings.store_timeout_seconds
        remaining = context.time_remaining()
        if remaining is not None:
            budget = min(budget, max(0.0, remaining - _DEADLINE_MARGIN_SECONDS))
        return budget

    async def _fail_mode(
        self, error: Exception, now: float, context: grpc.aio.ServicerContext
    ) -> threat_signal_service_pb2.CheckLoginResponse:
        cause = "timed out" if isinstance(error, TimeoutError) else str(error)
        log.error("store unavailable for a login", error=cause, fail_mode=self._settings.fail_mode)
        if self._settings.fail_mode != "step_up":
            await abort_with(context, unavailable("the gateway's store is unavailable; retry with the same request_id"))
        self._metrics.fail_mode_verdicts.inc()
        knowledge = self._knowledge()
        return fail_safe_response(new_verdict_id(now), now, knowledge.policy.version, str(knowledge.blocklist.version))

    def _valve_held_back(self, freeze: threat_signal_service_pb2.CheckLoginResponse, tripped: bool) -> None:
        if tripped:
            log.error(
                "SAFETY VALVE TRIPPED: FREEZE verdicts are degraded to STEP_UP until the security team resets it"
                " (mtsg valve status / mtsg valve reset); check recent policy and blocklist changes",
                freeze_cap_per_minute=self._settings.max_freezes_per_minute,
                scenario=freeze.scenario_id,
            )
        self._metrics.safety_valve_open.set(1)
        self._metrics.freezes_degraded.inc()

    def _decide(
        self, telemetry: LoginTelemetry, history: LoginHistory, knowledge: Knowledge, now: float
    ) -> tuple[threat_signal_service_pb2.CheckLoginResponse, tuple[ShadowFiring, ...]]:
        started = time.perf_counter()
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
        self._stage["evaluate"].observe(time.perf_counter() - started)
        return response, shadow

    async def _replay(
        self, earlier: StoredVerdict, fingerprint: bytes, context: grpc.aio.ServicerContext
    ) -> threat_signal_service_pb2.CheckLoginResponse:
        if earlier.request_fingerprint != fingerprint:
            violation = FieldViolation("request_id", "was already used for a different request; use a new request_id")
            await abort_with(
                context, invalid_argument(InvalidRequestError([violation]), ERROR_REASON_REQUEST_ID_REUSED)
            )
        return threat_signal_service_pb2.CheckLoginResponse.FromString(earlier.response)


def add_to_server(service: ThreatSignalService, server: grpc.aio.Server) -> None:
    """Registered as the generated ``add_ThreatSignalServiceServicer_to_server`` does, except that the
    body is decoded with its apps left as bytes (``gateway.login.wire``) for ``CheckedApps``."""
    name = threat_signal_service_pb2.DESCRIPTOR.services_by_name["ThreatSignalService"].full_name
    handlers = {
        "CheckLogin": grpc.unary_unary_rpc_method_handler(
            service.CheckLogin,
            request_deserializer=decode_check_login,
            response_serializer=threat_signal_service_pb2.CheckLoginResponse.SerializeToString,
        )
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
    server.add_registered_method_handlers(name, handlers)
