"""Starting, running and stopping the gateway's gRPC server.

``start_gateway`` builds everything and returns a handle (tests use it directly
with port 0); ``run_gateway`` adds signal handling for ``mtsg serve``.  Shutdown
is graceful: health turns NOT_SERVING first and calls are still answered for a
short drain period so load balancers stop sending, then new calls are refused and
calls in flight get the grace period to finish before the store is closed.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from threading import Thread
from wsgiref.simple_server import WSGIServer

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from gateway.commands.dispatcher import CommandDispatcher, DispatchSettings, stranded_backlog
from gateway.commands.endpoints import PushEndpoints
from gateway.commands.retry import RetryPolicy
from gateway.commands.stream_lag import StreamLagGauge
from gateway.commands.webhook_signing import WebhookKeyError, WebhookSigner
from gateway.config import Config, ConfigError, require_transport_choice, split_listen
from gateway.generated.mtsg.v1 import (
    blocklist_service_pb2,
    blocklist_service_pb2_grpc,
    command_feed_service_pb2,
    command_feed_service_pb2_grpc,
    event_service_pb2,
    event_service_pb2_grpc,
    policy_service_pb2,
    policy_service_pb2_grpc,
    threat_signal_service_pb2,
)
from gateway.generated.mtsg.v1.error_reason_pb2 import ERROR_REASON_TOO_MANY_STREAMS
from gateway.login.validation import Limits
from gateway.observability.metrics import Metrics
from gateway.observability.metrics_http import serve_metrics
from gateway.observability.version import mtsg_version
from gateway.policy.knowledge import KnowledgeError, load_knowledge
from gateway.policy.refresh import PolicyFileError, PolicyRefresher
from gateway.policy.remote_control_watch import RemoteControlListWatch
from gateway.privacy.phone_hash import PhoneHashKeyError, load_or_create_keys
from gateway.privacy.pseudonyms import use_pseudonym_key
from gateway.privacy.retention_job import RetentionJob, retention_policy
from gateway.registry.feed_sync import FeedSync
from gateway.registry.refresh import BlocklistRefresher, KnowledgeHolder
from gateway.runtime.periodic import cancel
from gateway.runtime.wakeup import Wakeup
from gateway.security.access import AccessGuard
from gateway.security.file_watch import WatchedFiles
from gateway.security.identities import IdentitiesError, IdentityBook, load_identities
from gateway.security.tls import ReloadingServerCredentials, TlsFileError, TlsFiles
from gateway.security.tls_client import ClientTLSError, client_tls
from gateway.server.grpc_options import gateway_options, health_options
from gateway.server.interceptor import ObservabilityInterceptor
from gateway.server.listen_check import refuse_taken_ports
from gateway.server.rate_limits import InFlightLimit, Refusal, TokenBuckets, answers_once
from gateway.server.registration import add_rarely_called
from gateway.services.blocklist import BlocklistService
from gateway.services.command_feed import CommandFeedService
from gateway.services.events import EventService
from gateway.services.policy import PolicyService
from gateway.services.threat_signal import LoginSettings, LoginThrottle, ThreatSignalService
from gateway.services.threat_signal import add_to_server as add_threat_signal_service
from gateway.store import Store, StoreUnavailableError, is_postgres_url, open_store
from gateway.urls import without_secrets

log = structlog.get_logger(__name__)

SERVICE_NAMES = (
    threat_signal_service_pb2.DESCRIPTOR.services_by_name["ThreatSignalService"].full_name,
    event_service_pb2.DESCRIPTOR.services_by_name["EventService"].full_name,
    blocklist_service_pb2.DESCRIPTOR.services_by_name["BlocklistService"].full_name,
    command_feed_service_pb2.DESCRIPTOR.services_by_name["CommandFeedService"].full_name,
    policy_service_pb2.DESCRIPTOR.services_by_name["PolicyService"].full_name,
)


# The command stream lives for hours: it is not counted against server.max_in_flight, but against
# commands.max_streams.
SUBSCRIBE_METHOD = f"/{SERVICE_NAMES[3]}/Subscribe"
STREAMS_REFUSAL = Refusal(
    "command_streams",
    ERROR_REASON_TOO_MANY_STREAMS,
    "this gateway serves {limit} command streams already (commands.max_streams); close the ones no longer read",
    5.0,
)


# What stops a gateway from starting, told to the operator in one line instead of a traceback.
STARTUP_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    KnowledgeError,
    PhoneHashKeyError,
    PolicyFileError,
    StoreUnavailableError,
    WebhookKeyError,
    ClientTLSError,
    IdentitiesError,
    TlsFileError,
)


@dataclass
class RunningGateway:
    config: Config
    server: grpc.aio.Server
    port: int
    health_server: grpc.aio.Server | None
    health_port: int | None
    metrics_port: int | None
    health: health.aio.HealthServicer
    store: Store
    metrics: Metrics
    knowledge: KnowledgeHolder
    refresher: BlocklistRefresher
    policy_refresher: PolicyRefresher
    feed_sync: FeedSync | None
    dispatcher: CommandDispatcher | None
    push_endpoints: PushEndpoints
    retention: RetentionJob | None
    stream_lag: StreamLagGauge
    remote_control_watch: RemoteControlListWatch | None
    tls: ReloadingServerCredentials | None
    _metrics_http: tuple[WSGIServer, Thread] | None
    _stopped: bool = False

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self, grace: float, drain: float = 0.0) -> None:
        """Drain, then stop; idempotent, so a test or a signal handler may call it again safely.

        During ``drain`` seconds health already says NOT_SERVING but calls are still
        accepted: requests a client sent just before the signal are received and
        answered instead of being cancelled by the transport.  Then new calls are
        refused and calls in flight get ``grace`` seconds to finish.
        """
        if self._stopped:
            return
        self._stopped = True
        log.info("shutting down", drain_seconds=drain, grace_seconds=grace)
        await self.health.enter_graceful_shutdown()
        if drain > 0:
            await asyncio.sleep(drain)
        await self.server.stop(grace)
        if self.health_server is not None:
            await self.health_server.stop(0)
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        await self.push_endpoints.stop()
        if self.feed_sync is not None:
            await self.feed_sync.stop()
        if self.retention is not None:
            await self.retention.stop()
        await self.stream_lag.stop()
        if self.remote_control_watch is not None:
            await self.remote_control_watch.stop()
        await self.refresher.stop()
        await self.policy_refresher.stop()
        await self.store.close()
        if self._metrics_http is not None:
            http, thread = self._metrics_http
            http.shutdown()
            http.server_close()
            thread.join(timeout=5)
        log.info("stopped")


def _dispatch_settings(config: Config) -> DispatchSettings:
    commands = config.commands
    return DispatchSettings(
        retry=RetryPolicy(commands.max_attempts, commands.backoff_initial_seconds, commands.backoff_max_seconds),
        request_timeout_seconds=commands.request_timeout_seconds,
        lease_seconds=commands.lease_seconds,
        poll_interval_seconds=commands.poll_interval_seconds,
        concurrency=commands.concurrency,
    )


def _is_loopback(listen: str) -> bool:
    host, _ = split_listen(listen)
    return host in ("127.0.0.1", "::1", "localhost")


def _load_transport(
    config: Config,
) -> tuple[ReloadingServerCredentials | None, WatchedFiles[IdentityBook] | None]:
    """TLS credentials and identities, both read now so a bad file stops the start with a clear message."""
    require_transport_choice(config)
    tls_files = TlsFiles.of(config.server)
    tls = ReloadingServerCredentials(tls_files) if tls_files else None
    identities = None
    if config.auth.identities_file:
        path = Path(config.auth.identities_file)
        identities = WatchedFiles((path,), lambda: load_identities(path), "identities file")
    if config.auth.insecure:
        log.warning(
            "INSECURE MODE: no TLS and no authentication; any caller may check logins, edit blocklists and policy"
            " and read commands. Never run a bank's traffic like this (auth.insecure, docs/SECURITY.md)",
            listen=config.server.listen,
        )
    elif tls is None and not _is_loopback(config.server.listen):
        log.warning(
            "bearer tokens travel in plain text: set server.tls_cert_file/tls_key_file unless a proxy or mesh"
            " terminates TLS in front of this port",
            listen=config.server.listen,
        )
    return tls, identities


def _ports_served(config: Config) -> list[tuple[str, str]]:
    """What this gateway will bind, with the purpose its refusal names (as the binds below name it)."""
    server = config.server
    wanted = (
        ("listen on", server.listen),
        ("serve health on", server.health_listen),
        ("serve metrics on", server.metrics_listen),
    )
    return [(purpose, address) for purpose, address in wanted if address]


async def start_gateway(
    config: Config, *, clock: Callable[[], float] = time.time, reuse_port: bool = False
) -> RunningGateway:
    """Open the store, load the brain's data, bind the port and start serving.

    ``reuse_port``: one of ``mtsg serve --workers``' processes, sharing its ports with the others.
    """
    tls, identities = _load_transport(config)
    remote_control_file = config.signals.remote_control_apps_file
    remote_control_watch = RemoteControlListWatch(Path(remote_control_file)) if remote_control_file else None
    knowledge = load_knowledge(remote_control_watch.catalog if remote_control_watch is not None else None)
    signer = WebhookSigner.from_files(
        Path(config.commands.hmac_secret_file) if config.commands.hmac_secret_file else None,
        Path(config.commands.ed25519_key_file) if config.commands.ed25519_key_file else None,
    )
    commands = config.commands
    endpoint_context = client_tls(
        commands.ca_file, commands.client_cert_file, commands.client_key_file, settings="commands."
    )
    feed_context = client_tls(config.blocklist.feed_ca_file, settings="blocklist.feed_")
    if is_postgres_url(config.store.url) and not config.privacy.phone_hash_key_file:
        # A key made up in each replica's data dir would hash one number differently per replica.
        raise ConfigError(
            "privacy.phone_hash_key_file must be set when store.url is PostgreSQL: every replica must hash"
            " phone numbers with the same key (mount it from a Secret; docs/POSTGRESQL.md)"
        )
    # Every file read and checked above; nothing written yet.  The ports next, then the data dir.
    if not reuse_port:  # a worker's ports were reserved by its supervisor, which looked at them first
        refuse_taken_ports(_ports_served(config))
    config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # its store and keys are the owner's alone
    hasher = load_or_create_keys(config.phone_hash_key_path).current
    use_pseudonym_key(hasher.key)
    store = await open_store(
        config.store.url, config.data_dir, config.store.pool_size, config.store.statement_timeout_seconds
    )
    holder = KnowledgeHolder(knowledge)
    push_endpoints = PushEndpoints(store, config.command_endpoints, clock)
    refresher = BlocklistRefresher(
        store, holder, config.blocklist.refresh_interval_seconds, config.blocklist.rebuild_threshold
    )
    policy_refresher = PolicyRefresher(
        store,
        holder,
        config.signals.policy_refresh_interval_seconds,
        Path(config.signals.policy_file) if config.signals.policy_file else None,
        clock,
    )
    wakeup = Wakeup()
    # Another replica's committed change (PostgreSQL NOTIFY) wakes the one who acts on it here.
    woken = {"blocklist": Wakeup(), "policy": Wakeup(), "commands": wakeup}
    try:
        await refresher.load()
        await policy_refresher.load()
        await store.listen(lambda topic: woken[topic].notify() if topic in woken else None)
    except BaseException:
        await store.close()
        raise
    metrics = Metrics.create()
    limits = Limits.of(config.limits, config.login.max_telemetry_age_seconds)
    metrics.insecure_mode.set(1 if config.auth.insecure else 0)
    metrics.blocklist_version.set_function(lambda: holder.current.blocklist.version)
    metrics.policy_version.set_function(lambda: policy_refresher.version)
    if tls is not None:
        metrics.tls_expiry.set_function(lambda: tls.expires_at)
    guard = AccessGuard((lambda: identities.value) if identities else None, metrics)
    in_flight = InFlightLimit(config.server.max_in_flight, metrics, answers_once(frozenset({SUBSCRIBE_METHOD})))
    streams = InFlightLimit(
        config.commands.max_streams, metrics, lambda method: method == SUBSCRIBE_METHOD, STREAMS_REFUSAL
    )
    guards = (guard.admit, in_flight.admit, streams.admit)
    server = grpc.aio.server(
        interceptors=[ObservabilityInterceptor(metrics, config.server.max_call_seconds, guards=guards)],
        options=gateway_options(config.server, reuse_port),
    )
    add_threat_signal_service(
        ThreatSignalService(
            store,
            lambda: holder.current,
            LoginSettings(
                limits,
                config.signals.phone_change_window_hours * 3600.0,
                lambda: push_endpoints.current,
                store_timeout_seconds=config.login.store_timeout_seconds,
                fail_mode=config.login.fail_mode,
                max_freezes_per_minute=config.login.max_freezes_per_minute,
                app_cache_entries=config.login.app_cache_entries,
                app_cache_bytes=config.login.app_cache_bytes,
            ),
            metrics,
            clock,
            wakeup,
            LoginThrottle(
                TokenBuckets(config.login.device_logins_per_minute, config.login.device_login_burst),
                TokenBuckets(config.login.customer_logins_per_minute, config.login.customer_login_burst),
            ),
        ),
        server,
    )
    event_service_pb2_grpc.add_EventServiceServicer_to_server(EventService(store, hasher, limits, clock), server)
    add_rarely_called(
        blocklist_service_pb2_grpc.add_BlocklistServiceServicer_to_server,
        BlocklistService(store, config.trusted_keys_dir, refresher.refresh, clock, config.server.max_message_bytes),
        server,
    )
    add_rarely_called(
        policy_service_pb2_grpc.add_PolicyServiceServicer_to_server,
        PolicyService(store, policy_refresher.refresh, clock),
        server,
    )
    add_rarely_called(
        command_feed_service_pb2_grpc.add_CommandFeedServiceServicer_to_server,
        CommandFeedService(store, wakeup, config.commands.poll_interval_seconds, clock),
        server,
    )
    health_servicer = health.aio.HealthServicer()
    add_rarely_called(health_pb2_grpc.add_HealthServicer_to_server, health_servicer, server)
    add_rarely_called(
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server,
        reflection.aio.ReflectionServicer((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME)),
        server,
    )

    try:
        if tls is not None:
            port = server.add_secure_port(config.server.listen, tls.credentials)
        else:
            port = server.add_insecure_port(config.server.listen)
    except RuntimeError as error:
        await store.close()
        raise OSError(f"cannot listen on {config.server.listen}: {error}") from error
    health_server, health_port = None, None
    if config.server.health_listen:
        health_server = grpc.aio.server(options=health_options(reuse_port))
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_server)
        try:
            health_port = health_server.add_insecure_port(config.server.health_listen)
        except RuntimeError as error:
            await store.close()
            raise OSError(f"cannot serve health on {config.server.health_listen}: {error}") from error
    metrics_http = None
    if config.server.metrics_listen:
        host, metrics_port = split_listen(config.server.metrics_listen)
        try:
            metrics_http = serve_metrics(host, metrics_port, metrics.registry)
        except OSError as error:
            await store.close()
            raise OSError(f"cannot serve metrics on {config.server.metrics_listen}: {error}") from error
    await server.start()
    if health_server is not None:
        await health_server.start()
    refresher.start(woken["blocklist"])
    policy_refresher.start(woken["policy"])
    feed_sync = None
    if config.feed_urls:
        feed_sync = FeedSync(
            store,
            config.feed_urls,
            interval=config.blocklist.feed_interval_seconds,
            timeout=config.blocklist.feed_timeout_seconds,
            trusted_keys_dir=config.trusted_keys_dir,
            on_change=refresher.refresh,
            metrics=metrics,
            clock=clock,
            verify=feed_context,
        )
        feed_sync.start()
    await push_endpoints.announce()
    push_endpoints.start()
    await _report_stranded_deliveries(store, config.command_endpoints)
    dispatcher = None
    if config.command_endpoints:
        dispatcher = CommandDispatcher(
            store,
            config.command_endpoints,
            signer,
            _dispatch_settings(config),
            metrics,
            wakeup,
            clock,
            endpoint_context,
        )
        dispatcher.start()
    retention = None
    if config.retention.purge_interval_seconds > 0:
        retention = RetentionJob(
            store, retention_policy(config), config.retention.purge_interval_seconds, metrics, clock
        )
        retention.start()
    stream_lag = StreamLagGauge(store, metrics, clock)
    stream_lag.start()
    if remote_control_watch is not None:
        remote_control_watch.start(holder)
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    running = RunningGateway(
        config=config,
        server=server,
        port=port,
        health_server=health_server,
        health_port=health_port,
        metrics_port=metrics_http[0].server_port if metrics_http else None,
        health=health_servicer,
        store=store,
        metrics=metrics,
        knowledge=holder,
        refresher=refresher,
        policy_refresher=policy_refresher,
        feed_sync=feed_sync,
        dispatcher=dispatcher,
        push_endpoints=push_endpoints,
        retention=retention,
        stream_lag=stream_lag,
        remote_control_watch=remote_control_watch,
        tls=tls,
        _metrics_http=metrics_http,
    )
    log.info(
        "serving",
        version=mtsg_version(),
        listen=config.server.listen,
        port=port,
        metrics_port=running.metrics_port,
        health_port=health_port,
        data_dir=str(config.data_dir),
        policy_version=holder.current.policy.version,
        remote_control_apps=len(knowledge.remote_control.by_package),
        blocklist_version=holder.current.blocklist.version,
        blocklist_entries=holder.current.blocklist.size,
        command_endpoints=[without_secrets(url) for url in config.command_endpoints],
        tls=tls is not None,
        client_certificates_required=bool(config.server.tls_client_ca_file),
        authentication="off (insecure)" if config.auth.insecure else config.auth.identities_file,
    )
    return running


async def _report_stranded_deliveries(store: Store, endpoints: Sequence[str]) -> None:
    """Say at start when deliveries wait for an endpoint taken out of ``commands.endpoint_urls``.

    Changing an endpoint's URL leaves the old one's pending deliveries, a FREEZE among them
    perhaps, with nobody to send them: the dispatcher sends only to configured endpoints.
    """
    stranded = stranded_backlog(await store.commands.backlog(), endpoints)
    if stranded:
        log.error(
            "deliveries wait for endpoints no longer in commands.endpoint_urls and nothing sends them: hand them"
            " to a configured endpoint with `mtsg commands move-endpoint OLD_URL NEW_URL`"
            " (`mtsg commands status` lists them)",
            stranded=stranded,
        )


async def _reload_policy_file(running: RunningGateway) -> None:
    """SIGHUP: apply the policy file if it changed; a bad file is logged and the running policy stays."""
    try:
        applied = await running.policy_refresher.reload_file()
    except (PolicyFileError, StoreUnavailableError) as error:
        log.error("SIGHUP: policy not reloaded; the running policy stays in force", error=str(error))
        return
    log.info("SIGHUP: policy file re-read", changed=applied, version=running.knowledge.current.policy.version)


async def _reload_on_hangup(running: RunningGateway, hangup: asyncio.Event) -> None:
    """One reload at a time: hangups that come while one runs are folded into the next."""
    while True:
        await hangup.wait()
        hangup.clear()
        await _reload_policy_file(running)


# A young generation this large is collected every few logins instead of several times in one.
YOUNG_GENERATION_OBJECTS = 10_000


def settle_the_heap() -> None:
    """Hide what was loaded at start (modules, grpc, the knowledge) from the garbage collector.

    None of it ever becomes garbage, yet every full collection walked all of it, on the event
    loop: under load those pauses were most of the slowest logins' time.
    Objects made later are collected as usual, and frozen ones are still freed when unreferenced.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_OBJECTS, 50, 100)


async def run_gateway(
    config: Config, *, reuse_port: bool = False, on_serving: Callable[[], None] | None = None
) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully; SIGHUP re-reads the policy file.

    ``on_serving`` is told once the port answers (a worker tells its supervisor).
    """
    loop = asyncio.get_running_loop()
    # Caught from before the start: SIGHUP's default action ends the process (a `systemctl reload`
    # while the registry loads would stop the gateway), and a reload asked for then is done once it serves.
    hangup = asyncio.Event()
    loop.add_signal_handler(signal.SIGHUP, hangup.set)
    running = await start_gateway(config, reuse_port=reuse_port)
    settle_the_heap()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    reloading = loop.create_task(_reload_on_hangup(running, hangup), name="policy-file-reload")
    if on_serving is not None:
        on_serving()
    await stopping.wait()
    await cancel(reloading)
    await running.stop(config.server.shutdown_grace_seconds, config.server.shutdown_drain_seconds)
