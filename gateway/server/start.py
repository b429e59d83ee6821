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
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from threading import Thread
from typing import Protocol
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
from gateway.privacy.phone_hash import PhoneHashKeyError, PhoneNumberHasher, load_or_create_keys
from gateway.privacy.pseudonyms import use_pseudonym_key
from gateway.privacy.retention_job import RetentionJob, retention_policy
from gateway.registry.feed_sync import FeedSync
from gateway.registry.refresh import BlocklistRefresher, KnowledgeHolder
from gateway.runtime.periodic import cancel
from gateway.runtime.wakeup import Wakeup
from gateway.security.access import AccessGuard
from gateway.security.file_watch import WatchedFiles
from gateway.security.identities import IdentitiesError, IdentityBook, load_identities
from gateway.security.rate_limits import InFlightLimit, Refusal, answers_once
from gateway.security.tls import ReloadingServerCredentials, TlsFileError, TlsFiles
from gateway.security.tls_client import ClientTLSError, client_tls
from gateway.server.grpc_options import gateway_options, health_options
from gateway.server.interceptor import ObservabilityInterceptor
from gateway.server.listen_check import refuse_taken_ports
from gateway.server.registration import add_rarely_called
from gateway.services.blocklist import BlocklistService
from gateway.services.command_feed import CommandFeedService
from gateway.services.events import EventService
from gateway.services.policy import PolicyService
from gateway.services.threat_signal import LoginSettings, LoginThrottle, ThreatSignalService
from gateway.services.threat_signal import add_to_server as add_threat_signal_service
from gateway.store import Store, StoreUnavailableError, is_postgres_url, open_store
from gateway.urls import without_secrets
from signals.evaluate import Knowledge

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


class _Job(Protocol):
    """Background work a gateway starts once and stops at shutdown."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class _Jobs:
    feed_sync: FeedSync | None
    dispatcher: CommandDispatcher | None
    retention: RetentionJob | None
    stream_lag: StreamLagGauge


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
    # What start_gateway started, each with its clean-up: closed, newest first, by ``stop``.
    _resources: AsyncExitStack = field(repr=False)
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
        # Everything started is stopped in the reverse order it was started in (start_gateway).
        await self._resources.aclose()
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


@dataclass(frozen=True)
class _StartFiles:
    """Everything a start reads from files, read before anything is written or bound."""

    tls: ReloadingServerCredentials | None
    identities: WatchedFiles[IdentityBook] | None
    remote_control_watch: RemoteControlListWatch | None
    knowledge: Knowledge
    signer: WebhookSigner
    endpoint_context: ssl.SSLContext | bool
    feed_context: ssl.SSLContext | bool


def _read_files(config: Config) -> _StartFiles:
    """Every file the gateway needs, read and checked, so a bad one stops the start with nothing done."""
    tls, identities = _load_transport(config)
    remote_control_file = config.signals.remote_control_apps_file
    remote_control_watch = RemoteControlListWatch(Path(remote_control_file)) if remote_control_file else None
    commands = config.commands
    files = _StartFiles(
        tls=tls,
        identities=identities,
        remote_control_watch=remote_control_watch,
        knowledge=load_knowledge(remote_control_watch.catalog if remote_control_watch is not None else None),
        signer=WebhookSigner.from_files(
            Path(commands.hmac_secret_file) if commands.hmac_secret_file else None,
            Path(commands.ed25519_key_file) if commands.ed25519_key_file else None,
        ),
        endpoint_context=client_tls(
            commands.ca_file, commands.client_cert_file, commands.client_key_file, settings="commands."
        ),
        feed_context=client_tls(config.blocklist.feed_ca_file, settings="blocklist.feed_"),
    )
    if is_postgres_url(config.store.url) and not config.privacy.phone_hash_key_file:
        # A key made up in each replica's data dir would hash one number differently per replica.
        raise ConfigError(
            "privacy.phone_hash_key_file must be set when store.url is PostgreSQL: every replica must hash"
            " phone numbers with the same key (mount it from a Secret; docs/POSTGRESQL.md)"
        )
    return files


@dataclass(frozen=True)
class _Brain:
    """The store and what the gateway knows from it, loaded and kept current."""

    store: Store
    holder: KnowledgeHolder
    refresher: BlocklistRefresher
    policy_refresher: PolicyRefresher
    push_endpoints: PushEndpoints
    hasher: PhoneNumberHasher
    # Another replica's committed change (PostgreSQL NOTIFY) wakes the one who acts on it here.
    woken: dict[str, Wakeup]


async def _open_brain(config: Config, files: _StartFiles, clock: Callable[[], float], stack: AsyncExitStack) -> _Brain:
    """The data dir, the keys and the store; the registry and policy loaded; replicas' changes listened to."""
    config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # its store and keys are the owner's alone
    hasher = load_or_create_keys(config.phone_hash_key_path).current
    use_pseudonym_key(hasher.key)
    store = await open_store(
        config.store.url, config.data_dir, config.store.pool_size, config.store.statement_timeout_seconds
    )
    stack.push_async_callback(store.close)
    holder = KnowledgeHolder(files.knowledge)
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
    woken = {"blocklist": Wakeup(), "policy": Wakeup(), "commands": Wakeup()}
    await refresher.load()
    await policy_refresher.load()
    await store.listen(lambda topic: woken[topic].notify() if topic in woken else None)
    return _Brain(
        store=store,
        holder=holder,
        refresher=refresher,
        policy_refresher=policy_refresher,
        push_endpoints=PushEndpoints(store, config.command_endpoints, clock),
        hasher=hasher,
        woken=woken,
    )


def _grpc_server(
    config: Config, files: _StartFiles, brain: _Brain, metrics: Metrics, clock: Callable[[], float], reuse_port: bool
) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    """The gRPC server with its guards and every service on it; not yet bound or started."""
    identities = files.identities
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
    store, holder, commands_woken = brain.store, brain.holder, brain.woken["commands"]
    push_endpoints = brain.push_endpoints
    add_threat_signal_service(
        ThreatSignalService(
            store,
            lambda: holder.current,
            LoginSettings.of(config, lambda: push_endpoints.current),
            metrics,
            clock,
            commands_woken,
            LoginThrottle.of(config.login),
        ),
        server,
    )
    event_service_pb2_grpc.add_EventServiceServicer_to_server(
        EventService(store, brain.hasher, Limits.of(config), clock), server
    )
    add_rarely_called(
        blocklist_service_pb2_grpc.add_BlocklistServiceServicer_to_server,
        BlocklistService(
            store, config.trusted_keys_dir, brain.refresher.refresh, clock, config.server.max_message_bytes
        ),
        server,
    )
    add_rarely_called(
        policy_service_pb2_grpc.add_PolicyServiceServicer_to_server,
        PolicyService(store, brain.policy_refresher.refresh, clock),
        server,
    )
    add_rarely_called(
        command_feed_service_pb2_grpc.add_CommandFeedServiceServicer_to_server,
        CommandFeedService(store, commands_woken, config.commands.poll_interval_seconds, clock),
        server,
    )
    health_servicer = health.aio.HealthServicer()
    add_rarely_called(health_pb2_grpc.add_HealthServicer_to_server, health_servicer, server)
    add_rarely_called(
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server,
        reflection.aio.ReflectionServicer((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME)),
        server,
    )
    return server, health_servicer


def _bind(add_port: Callable[[], int], purpose: str, address: str) -> int:
    """The port ``add_port`` bound; grpc's bare RuntimeError becomes an OSError that names the address."""
    try:
        return add_port()
    except RuntimeError as error:
        raise OSError(f"cannot {purpose} {address}: {error}") from error


def _stopped_by(stack: AsyncExitStack, server: grpc.aio.Server) -> Callable[[], Awaitable[None]]:
    """``server``'s start; ``stack`` stops the server at clean-up, whether it started or not.

    grpc.aio lets go of the ports bound to a server only once the server has run, so one that
    never started is started for its stop: without that, a start that failed after a bind would
    leave the port taken for as long as the process lives.  Health has not said SERVING by then,
    so no balancer sends it a call.
    """
    started = False

    async def start() -> None:
        nonlocal started
        await server.start()
        started = True

    async def stop() -> None:
        if not started:
            await server.start()
        await server.stop(0)

    stack.push_async_callback(stop)
    return start


async def _serve_ports(
    config: Config,
    server: grpc.aio.Server,
    health_servicer: health.aio.HealthServicer,
    files: _StartFiles,
    metrics: Metrics,
    reuse_port: bool,
    stack: AsyncExitStack,
) -> tuple[int, grpc.aio.Server | None, int | None, int | None]:
    """Bind every port, then start the servers; ``stack`` stops each of them."""
    metrics_port = None
    if config.server.metrics_listen:
        host, wanted = split_listen(config.server.metrics_listen)
        try:
            http, thread = serve_metrics(host, wanted, metrics.registry)
        except OSError as error:
            raise OSError(f"cannot serve metrics on {config.server.metrics_listen}: {error}") from error
        stack.callback(_stop_metrics_http, http, thread)
        metrics_port = http.server_port
    start_server = _stopped_by(stack, server)
    listen = config.server.listen
    tls = files.tls
    if tls is not None:
        port = _bind(lambda: server.add_secure_port(listen, tls.credentials), "listen on", listen)
    else:
        port = _bind(lambda: server.add_insecure_port(listen), "listen on", listen)
    health_server, health_port = None, None
    start_health: Callable[[], Awaitable[None]] | None = None
    if config.server.health_listen:
        health_server = grpc.aio.server(options=health_options(reuse_port))
        start_health = _stopped_by(stack, health_server)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_server)
        address = config.server.health_listen
        health_port = _bind(lambda: health_server.add_insecure_port(address), "serve health on", address)
    await start_server()
    if start_health is not None:
        await start_health()
    return port, health_server, health_port, metrics_port


def _stop_metrics_http(http: WSGIServer, thread: Thread) -> None:
    http.shutdown()
    http.server_close()
    thread.join(timeout=5)


def _started(stack: AsyncExitStack, job: _Job) -> None:
    """Start ``job`` and have ``stack`` stop it."""
    job.start()
    stack.push_async_callback(job.stop)


async def _start_jobs(
    config: Config,
    files: _StartFiles,
    brain: _Brain,
    metrics: Metrics,
    clock: Callable[[], float],
    stack: AsyncExitStack,
) -> _Jobs:
    """The background work: refreshers, feed sync, endpoint announcements, push, retention, gauges."""
    store = brain.store
    brain.refresher.start(brain.woken["blocklist"])
    stack.push_async_callback(brain.refresher.stop)
    brain.policy_refresher.start(brain.woken["policy"])
    stack.push_async_callback(brain.policy_refresher.stop)
    feed_sync = None
    if config.feed_urls:
        feed_sync = FeedSync(
            store,
            config.feed_urls,
            interval=config.blocklist.feed_interval_seconds,
            timeout=config.blocklist.feed_timeout_seconds,
            trusted_keys_dir=config.trusted_keys_dir,
            on_change=brain.refresher.refresh,
            metrics=metrics,
            clock=clock,
            verify=files.feed_context,
        )
        _started(stack, feed_sync)
    await brain.push_endpoints.announce()
    _started(stack, brain.push_endpoints)
    await _report_stranded_deliveries(store, config.command_endpoints)
    dispatcher = None
    if config.command_endpoints:
        dispatcher = CommandDispatcher(
            store,
            config.command_endpoints,
            files.signer,
            _dispatch_settings(config),
            metrics,
            brain.woken["commands"],
            clock,
            files.endpoint_context,
        )
        _started(stack, dispatcher)
    retention = None
    if config.retention.purge_interval_seconds > 0:
        retention = RetentionJob(
            store, retention_policy(config), config.retention.purge_interval_seconds, metrics, clock
        )
        _started(stack, retention)
    stream_lag = StreamLagGauge(store, metrics, clock)
    _started(stack, stream_lag)
    if files.remote_control_watch is not None:
        files.remote_control_watch.start(brain.holder)
        stack.push_async_callback(files.remote_control_watch.stop)
    return _Jobs(feed_sync, dispatcher, retention, stream_lag)


def _set_gauges(metrics: Metrics, config: Config, files: _StartFiles, brain: _Brain) -> None:
    tls, holder, policy_refresher = files.tls, brain.holder, brain.policy_refresher
    metrics.insecure_mode.set(1 if config.auth.insecure else 0)
    metrics.blocklist_version.set_function(lambda: holder.current.blocklist.version)
    metrics.policy_version.set_function(lambda: policy_refresher.version)
    if tls is not None:
        metrics.tls_expiry.set_function(lambda: tls.expires_at)


async def start_gateway(
    config: Config, *, clock: Callable[[], float] = time.time, reuse_port: bool = False
) -> RunningGateway:
    """Open the store, load the brain's data, bind the port and start serving.

    Each step's clean-up goes on one exit stack as the step succeeds: a start that fails at any
    step undoes every earlier one in reverse order, and a running gateway's ``stop`` does the same.

    ``reuse_port``: one of ``mtsg serve --workers``' processes, sharing its ports with the others.
    """
    files = _read_files(config)
    # Every file read and checked; nothing written yet.  The ports next, then the data dir.
    if not reuse_port:  # a worker's ports were reserved by its supervisor, which looked at them first
        refuse_taken_ports(_ports_served(config))
    async with AsyncExitStack() as stack:
        brain = await _open_brain(config, files, clock, stack)
        metrics = Metrics.create()
        _set_gauges(metrics, config, files, brain)
        server, health_servicer = _grpc_server(config, files, brain, metrics, clock, reuse_port)
        port, health_server, health_port, metrics_port = await _serve_ports(
            config, server, health_servicer, files, metrics, reuse_port, stack
        )
        jobs = await _start_jobs(config, files, brain, metrics, clock, stack)
        for name in ("", *SERVICE_NAMES):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        running = RunningGateway(
            config=config,
            server=server,
            port=port,
            health_server=health_server,
            health_port=health_port,
            metrics_port=metrics_port,
            health=health_servicer,
            store=brain.store,
            metrics=metrics,
            knowledge=brain.holder,
            refresher=brain.refresher,
            policy_refresher=brain.policy_refresher,
            feed_sync=jobs.feed_sync,
            dispatcher=jobs.dispatcher,
            push_endpoints=brain.push_endpoints,
            retention=jobs.retention,
            stream_lag=jobs.stream_lag,
            remote_control_watch=files.remote_control_watch,
            tls=files.tls,
            _resources=stack.pop_all(),
        )
    _log_serving(running, files)
    return running


def _log_serving(running: RunningGateway, files: _StartFiles) -> None:
    config, holder = running.config, running.knowledge
    log.info(
        "serving",
        version=mtsg_version(),
        listen=config.server.listen,
        port=running.port,
        metrics_port=running.metrics_port,
        health_port=running.health_port,
        data_dir=str(config.data_dir),
        policy_version=holder.current.policy.version,
        remote_control_apps=len(files.knowledge.remote_control.by_package),
        blocklist_version=holder.current.blocklist.version,
        blocklist_entries=holder.current.blocklist.size,
        command_endpoints=[without_secrets(url) for url in config.command_endpoints],
        tls=files.tls is not None,
        client_certificates_required=bool(config.server.tls_client_ca_file),
        authentication="off (insecure)" if config.auth.insecure else config.auth.identities_file,
    )


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
