"""Configuration: embedded defaults, then a TOML file, then MTSG_* environment, then flags.

Each layer may set any key; later layers win.  Every value remembers where it came
from so ``mtsg config show`` can say why the gateway runs the way it does.  Unknown
keys and wrong types are refused with the key's full name, never ignored: a typo in
a bank's config must not silently fall back to a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.store import DEFAULT_STATEMENT_TIMEOUT
from gateway.store.database import redact
from gateway.urls import without_secrets

ENV_PREFIX = "MTSG_"


class ConfigError(ValueError):
    """The configuration is not valid; the message names the key and the layer."""


@dataclass(frozen=True)
class ServerConfig:
    # The gRPC address (`--listen`); port 0 picks a free one.
    listen: str = "127.0.0.1:50051"
    # Prometheus /metrics (`--metrics-listen`); empty: no metrics endpoint.
    metrics_listen: str = "127.0.0.1:9464"
    # A plain-text port serving only grpc.health.v1.Health, for probes that cannot speak TLS
    # (Kubernetes gRPC probes).  Empty: health is only on the main port.
    health_listen: str = ""
    # Larger requests are refused RESOURCE_EXHAUSTED; admitted calls may hold max_in_flight requests
    # of this size at once (docs/SECURITY.md sizes it).
    max_message_bytes: int = 4 * 1024 * 1024
    # On SIGTERM: keep answering (health NOT_SERVING) this long, then refuse new calls
    # and give calls in flight the grace period.
    shutdown_drain_seconds: float = 1.0
    # Then calls in flight get this long to finish.
    shutdown_grace_seconds: float = 10.0
    # Calls being handled at once; more are answered RESOURCE_EXHAUSTED at once instead of queueing.
    max_in_flight: int = 1000
    # The longest any call that answers once may run, whatever deadline the caller set (or none):
    # DEADLINE_EXCEEDED past it.  CheckLogin answers much sooner (login.store_timeout_seconds).
    max_call_seconds: float = 30.0
    # A client connection older than this is asked to reconnect (HTTP/2 GOAWAY; calls in flight get
    # max_call_seconds to finish): behind a plain Kubernetes Service, long-lived gRPC connections
    # would otherwise stay on the replicas that existed when they opened, and new ones get no load.
    # 0: connections live for ever.
    max_connection_age_seconds: float = 300.0
    # A connection with a call open (a command stream, most often) is pinged after this long
    # without a word from its peer, and dropped when the ping goes unanswered (for as long again,
    # at most 20 s): a consumer whose host died or whose firewall forgot the connection would
    # otherwise hold its stream until the connection's maximum age, or for ever.  0: no pings.
    keepalive_seconds: float = 60.0
    # How much of its callers' requests the gateway takes off one connection before its handlers
    # ask for them (the HTTP/2 window).  Larger: many calls at once on one connection over a long
    # round trip go faster; smaller: a flood of refused requests can push in less (each connection
    # at most this much).  docs/SECURITY.md gives the figures.
    flow_control_window_bytes: int = 4 * 1024 * 1024
    # Gateway processes on this port (SO_REUSEPORT), each a whole gateway on the shared store:
    # one Python process uses one core.  Worker i serves metrics on metrics_listen's port + i.
    workers: int = 1
    # TLS on the gRPC port: PEM certificate chain and key, re-read when the files change.
    tls_cert_file: str = ""
    # The private key of tls_cert_file's certificate; the two are set together.
    tls_key_file: str = ""
    # CA bundle for client certificates: set, every connection must present a certificate it
    # signed (mTLS); the certificate names the caller unless a bearer token does.
    tls_client_ca_file: str = ""


@dataclass(frozen=True)
class StoreConfig:
    # The SQLite database (WAL) and the phone-hash key live here (`--data-dir`).
    data_dir: str = "mtsg-data"
    # Empty: SQLite in data_dir.  "sqlite:///path/to/file.db" picks another file;
    # "postgresql://user@host:5432/db" runs on PostgreSQL (several replicas may share it).
    url: str = ""
    # PostgreSQL connections per gateway process (docs/POSTGRESQL.md sizes it).
    pool_size: int = 10
    # The longest one PostgreSQL statement may run before it fails as "store unavailable" and its
    # connection is replaced.  Bulk work (an import's merge, a migration) is not cut at this.
    statement_timeout_seconds: float = DEFAULT_STATEMENT_TIMEOUT


@dataclass(frozen=True)
class LimitsConfig:
    # Installed apps one login may report.
    max_installed_apps: int = 2000
    # Permissions one installed app may list.
    max_permissions_per_app: int = 200
    # How far in the future a device's clock may be.
    max_clock_skew_seconds: int = 300
    # Phone-number changes one ReportPhoneNumberChange call may carry.
    max_phone_changes_per_call: int = 1000


@dataclass(frozen=True)
class LoginConfig:
    """CheckLogin's protections against replay, floods, a failing store and a runaway rule."""

    # Telemetry collected longer ago is refused; nonces are remembered this long (plus the skew).
    max_telemetry_age_seconds: int = 300
    # Token buckets per device and per customer, in each gateway process.
    device_logins_per_minute: float = 30.0
    # Logins one device may make at once before its rate applies.
    device_login_burst: int = 10
    # The same for each customer, over all their devices.
    customer_logins_per_minute: float = 60.0
    # Logins one customer may make at once before their rate applies.
    customer_login_burst: int = 20
    # How long a login waits for the store before it answers with the fail mode.
    store_timeout_seconds: float = 2.0
    # "step_up": answer STEP_UP (fail-safe) when the store cannot be used; "unavailable": UNAVAILABLE.
    fail_mode: str = "step_up"
    # The safety valve: past this many FREEZE verdicts in a minute, FREEZE degrades to STEP_UP
    # until the security team resets it (`mtsg valve reset`).
    max_freezes_per_minute: int = 100
    # Installed apps kept checked, by their bytes, so a login's familiar apps are not checked again
    # (gateway.login.checked_apps); about 1.3 KB each, per gateway process.  0 keeps none.
    app_cache_entries: int = 20_000
    # And at most this much memory, counted in bytes (gateway.login.checked_apps.kept_cost): what callers
    # send is never kept beyond a bound that counts bytes, however large their apps.
    app_cache_bytes: int = 32 * 1024 * 1024
    # Inventories of devices that send digests, kept converted in memory by each gateway process so
    # that a login sending only its digest reads nothing more from the store (a few hundred bytes
    # an app: ~100 KB for a phone of 250 apps).  Beyond it the list is read from the store.  0 keeps none.
    held_inventory_bytes: int = 128 * 1024 * 1024


_FAIL_MODES = ("step_up", "unavailable")


@dataclass(frozen=True)
class SignalsConfig:
    # A phone-number change this recent counts as a sign at login.
    phone_change_window_hours: int = 168
    # Empty: the list shipped with mtsg (signals/data/remote_control_apps.toml).
    remote_control_apps_file: str = ""
    # A policy document applied at start and on SIGHUP when it differs from the version in force.
    # Empty: policy changes only through `mtsg policy` or PolicyService (the shipped playbook at first).
    policy_file: str = ""
    # How often each gateway checks the store for a new policy version.
    policy_refresh_interval_seconds: float = 0.25


@dataclass(frozen=True)
class BlocklistConfig:
    # How often each gateway checks the store for registry changes (the "within a second" promise).
    refresh_interval_seconds: float = 0.25
    # Changed entries held beside the base matcher before the base is rebuilt in the background.
    rebuild_threshold: int = 20000
    # Directory of trusted publisher public keys (*.pub, PEM).  Empty: <data_dir>/trusted-keys.
    trusted_keys_dir: str = ""
    # Signed bundle URLs to follow, separated by commas or spaces.  Empty: no feed sync.
    feed_urls: str = ""
    # How often each feed is fetched.
    feed_interval_seconds: float = 300.0
    # The longest one whole fetch may take, download included.
    feed_timeout_seconds: float = 30.0
    # A PEM CA bundle the feed fetch trusts instead of the public CAs (a feed on the bank's own PKI).
    feed_ca_file: str = ""


@dataclass(frozen=True)
class CommandsConfig:
    # Core-banking webhook URLs, separated by commas or spaces.  Empty: commands reach
    # core banking only through the gRPC CommandFeedService.
    endpoint_urls: str = ""
    # Standard Webhooks keys, one per line; several lines sign with each (key rotation).
    # whsec_… HMAC secrets (signature v1) and/or whsk_… Ed25519 private keys (v1a).
    hmac_secret_file: str = ""
    # Ed25519 signing keys (whsk_…, signature v1a), one per line, beside or instead of the HMAC secrets.
    ed25519_key_file: str = ""
    # Attempts per delivery (the first included) before it is dead-lettered.
    max_attempts: int = 160
    # The wait before the first retry; each retry waits about twice as long as the one before.
    backoff_initial_seconds: float = 1.0
    # The longest backoff between two attempts (an endpoint's Retry-After may ask for more, up to an hour).
    backoff_max_seconds: float = 600.0
    # The longest one push may take before it counts as failed and is retried.
    request_timeout_seconds: float = 10.0
    # How long a dispatcher holds a delivery it is sending; a crashed one's deliveries are retried after this.
    lease_seconds: float = 30.0
    # How often the outbox and the stream look for commands written by another process.
    poll_interval_seconds: float = 0.5
    # Deliveries in flight at once (never two of one customer to one endpoint).
    concurrency: int = 16
    # CommandFeedService streams one gateway process serves at once; more are refused.  Each
    # polls the store, so a consumer that leaks streams must not be able to slow down logins.
    max_streams: int = 64
    # TLS towards the endpoints: a PEM CA bundle to trust instead of the public CAs (the bank's own
    # PKI), and a client certificate and key for endpoints that ask for one (mTLS).  Read at start.
    ca_file: str = ""
    # The client certificate (PEM) shown to endpoints that ask for one.
    client_cert_file: str = ""
    # The private key of client_cert_file's certificate; the two are set together.
    client_key_file: str = ""


@dataclass(frozen=True)
class PrivacyConfig:
    # Empty: <data_dir>/phone-hash.key, created with 32 random bytes on first start.
    phone_hash_key_file: str = ""


@dataclass(frozen=True)
class RetentionConfig:
    """How long the store keeps what it collects, in days; 0 keeps it for ever (docs/SECURITY.md)."""

    # customer_devices, login_locations, device_inventories.  Keep at least as long as the
    # policy's history windows look back, or a known device is "new" again.
    device_history_days: float = 0.0
    # Verdicts and shadow firings; a verdict a kept command or location points at stays.
    verdicts_days: float = 0.0
    # Commands every endpoint has received and every stream consumer has acknowledged.
    commands_days: float = 0.0
    # Phone-number-change events.
    phone_changes_days: float = 0.0
    # How often each gateway runs the purge (login nonces are purged then too); 0: never.
    purge_interval_seconds: float = 3600.0


@dataclass(frozen=True)
class AuthConfig:
    # TOML file mapping bearer-token hashes and client-certificate names to roles
    # (app, telco, secops, core); `mtsg auth token` makes entries.  docs/SECURITY.md.
    identities_file: str = ""
    # Plain text allowed and no authentication: every caller holds every role.  For a
    # developer's machine only; the gateway says so loudly at start.
    insecure: bool = False


@dataclass(frozen=True)
class LoggingConfig:
    # debug, info, warning or error.
    level: str = "info"


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    login: LoginConfig = field(default_factory=LoginConfig)
    signals: SignalsConfig = field(default_factory=SignalsConfig)
    blocklist: BlocklistConfig = field(default_factory=BlocklistConfig)
    commands: CommandsConfig = field(default_factory=CommandsConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    @property
    def data_dir(self) -> Path:
        return Path(self.store.data_dir)

    @property
    def trusted_keys_dir(self) -> Path:
        return (
            Path(self.blocklist.trusted_keys_dir) if self.blocklist.trusted_keys_dir else self.data_dir / "trusted-keys"
        )

    @property
    def phone_hash_key_path(self) -> Path:
        """The phone-hash key ring: ``privacy.phone_hash_key_file`` or the data dir's default."""
        configured = self.privacy.phone_hash_key_file
        return Path(configured) if configured else self.data_dir / "phone-hash.key"

    @property
    def feed_urls(self) -> tuple[str, ...]:
        return _urls(self.blocklist.feed_urls)

    @property
    def command_endpoints(self) -> tuple[str, ...]:
        return _urls(self.commands.endpoint_urls)


def _urls(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(url for url in text.replace(",", " ").split() if url))


Key = tuple[str, str]
_LOG_LEVELS = ("debug", "info", "warning", "error")
# Settings holding URLs that may carry a token or credentials: `config show` prints them without.
_URL_LISTS = {("blocklist", "feed_urls"), ("commands", "endpoint_urls")}


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    # "default", "file <path>", "env MTSG_X_Y" or "flag --x"
    sources: Mapping[Key, str]
    # What is wrong with MTSG_<SECTION>_* variables that set nothing (a typo), one line each.
    ignored_variables: tuple[str, ...] = ()


def _sections() -> dict[str, type]:
    return {f.name: f.type if isinstance(f.type, type) else globals()[f.type] for f in dataclasses.fields(Config)}


def _field_types(section_type: type) -> dict[str, type]:
    types = {"str": str, "int": int, "float": float, "bool": bool}
    return {f.name: types[str(f.type)] for f in dataclasses.fields(section_type)}


# gRPC holds message size limits in a C int.
MAX_GRPC_MESSAGE_BYTES = 2**31 - 1
MIN_WINDOW_BYTES = 65_535  # HTTP/2's initial window; less would stall every request
# The largest number a float setting takes: about 31 years in seconds.
MAX_NUMBER_SETTING = 1e9
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _text_to_bool(name: str, origin: str, text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ConfigError(f"{name} ({origin}): expected true or false, got {text!r}")


def _coerce(key: Key, value: Any, wanted: type, origin: str) -> Any:
    coerced = _coerce_type(key, value, wanted, origin)
    # float() takes "nan" and "inf", and so does TOML; every comparison with nan is False, so it would
    # pass the range checks below and reach asyncio as an interval or a timeout.  Past about 1e11 s a
    # socket timeout overflows the platform's time_t, so seconds are capped well below that.
    if wanted is float and not (math.isfinite(coerced) and abs(coerced) <= MAX_NUMBER_SETTING):
        raise ConfigError(
            f"{'.'.join(key)} ({origin}): expected a finite number up to {MAX_NUMBER_SETTING:,.0f}, got {value!r}"
        )
    return coerced


def _coerce_type(key: Key, value: Any, wanted: type, origin: str) -> Any:
    name = ".".join(key)
    # Environment variables and flags are text by nature; a TOML file has real types and must use them.
    if isinstance(value, str) and wanted is bool and not origin.startswith("file "):
        return _text_to_bool(name, origin, value)
    if isinstance(value, str) and wanted is not str and not origin.startswith("file "):
        try:
            return wanted(value.strip())
        except ValueError:
            raise ConfigError(f"{name} ({origin}): expected {wanted.__name__}, got {value!r}") from None
    if wanted is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not wanted:
        raise ConfigError(f"{name} ({origin}): expected {wanted.__name__}, got {type(value).__name__}")
    return value


def _read_file(path: Path) -> dict[Key, Any]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    except RecursionError:
        raise ConfigError(f"config file {path} is not readable TOML: nested too deeply") from None
    values: dict[Key, Any] = {}
    sections = _sections()
    for section, table in document.items():
        if section not in sections:
            raise ConfigError(f"config file {path}: unknown section [{section}] (known: {', '.join(sections)})")
        if not isinstance(table, dict):
            raise ConfigError(f"config file {path}: [{section}] must be a table")
        known = _field_types(sections[section])
        for name, value in table.items():
            if name not in known:
                raise ConfigError(f"config file {path}: unknown key {section}.{name} (known: {', '.join(known)})")
            values[(section, name)] = value
    return values


def env_variable(section: str, name: str) -> str:
    """The environment variable that sets ``section.name`` (MTSG_LOGIN_DEVICE_LOGIN_BURST)."""
    return f"{ENV_PREFIX}{section}_{name}".upper()


def _read_env(environ: Mapping[str, str]) -> dict[Key, tuple[Any, str]]:
    values: dict[Key, tuple[Any, str]] = {}
    for section, section_type in _sections().items():
        for name in _field_types(section_type):
            variable = env_variable(section, name)
            if variable in environ:
                values[(section, name)] = (environ[variable], f"env {variable}")
    return values


_SERVICE_LINK = re.compile(r"_SERVICE_HOST$|_SERVICE_PORT(_[A-Z0-9_]+)?$|_PORT(_[0-9]+_(TCP|UDP|SCTP)(_[A-Z]+)?)?$")


def _ignored_variables(environ: Mapping[str, str]) -> tuple[str, ...]:
    """MTSG_<SECTION>_* variables that name no setting, each with the setting it was probably meant for.

    A mistyped key in the file is refused; a mistyped variable would be ignored without a word, and the
    operator would believe it in force.  Such a variable is reported, not refused: an orchestrator may
    set variables of its own under the same prefix.  Kubernetes' Service links (MTSG_STORE_SERVICE_HOST,
    MTSG_STORE_PORT_5432_TCP for a Service called mtsg-store) are left out: no setting ends that way.
    """
    known = [env_variable(section, name) for section, kind in _sections().items() for name in _field_types(kind)]
    prefixes = tuple(f"{ENV_PREFIX}{section}_".upper() for section in _sections())
    notes = []
    for variable in sorted(environ):
        if variable.startswith(prefixes) and variable not in known and not _SERVICE_LINK.search(variable):
            near = difflib.get_close_matches(variable, known, n=1)
            notes.append(f"{variable} sets nothing" + (f" (did you mean {near[0]}?)" if near else ""))
    return tuple(notes)


def split_listen(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 hosts in brackets), as _validate accepts it, as host and port."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def join_listen(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _validate(config: Config) -> None:
    for key in ("listen", "metrics_listen", "health_listen"):
        address = getattr(config.server, key)
        if key != "listen" and address == "":
            continue
        host, _, port = address.rpartition(":")
        if not host or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
            raise ConfigError(f"server.{key}: expected HOST:PORT, got {address!r}")
    positive = {
        "server.max_message_bytes": config.server.max_message_bytes,
        "store.pool_size": config.store.pool_size,
        "store.statement_timeout_seconds": config.store.statement_timeout_seconds,
        "server.max_in_flight": config.server.max_in_flight,
        "server.max_call_seconds": config.server.max_call_seconds,
        "server.workers": config.server.workers,
        "login.max_telemetry_age_seconds": config.login.max_telemetry_age_seconds,
        "login.device_logins_per_minute": config.login.device_logins_per_minute,
        "login.device_login_burst": config.login.device_login_burst,
        "login.customer_logins_per_minute": config.login.customer_logins_per_minute,
        "login.customer_login_burst": config.login.customer_login_burst,
        "login.store_timeout_seconds": config.login.store_timeout_seconds,
        "login.max_freezes_per_minute": config.login.max_freezes_per_minute,
        "limits.max_installed_apps": config.limits.max_installed_apps,
        "limits.max_permissions_per_app": config.limits.max_permissions_per_app,
        "limits.max_phone_changes_per_call": config.limits.max_phone_changes_per_call,
        "signals.phone_change_window_hours": config.signals.phone_change_window_hours,
        "signals.policy_refresh_interval_seconds": config.signals.policy_refresh_interval_seconds,
        "blocklist.refresh_interval_seconds": config.blocklist.refresh_interval_seconds,
        "blocklist.rebuild_threshold": config.blocklist.rebuild_threshold,
        "blocklist.feed_interval_seconds": config.blocklist.feed_interval_seconds,
        "blocklist.feed_timeout_seconds": config.blocklist.feed_timeout_seconds,
        "commands.max_attempts": config.commands.max_attempts,
        "commands.backoff_initial_seconds": config.commands.backoff_initial_seconds,
        "commands.backoff_max_seconds": config.commands.backoff_max_seconds,
        "commands.request_timeout_seconds": config.commands.request_timeout_seconds,
        "commands.lease_seconds": config.commands.lease_seconds,
        "commands.poll_interval_seconds": config.commands.poll_interval_seconds,
        "commands.concurrency": config.commands.concurrency,
        "commands.max_streams": config.commands.max_streams,
    }
    for name, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{name}: must be positive, got {value}")
    window = config.server.flow_control_window_bytes
    if not MIN_WINDOW_BYTES <= window <= MAX_GRPC_MESSAGE_BYTES:
        raise ConfigError(
            f"server.flow_control_window_bytes: HTTP/2 takes {MIN_WINDOW_BYTES:,} to {MAX_GRPC_MESSAGE_BYTES:,},"
            f" got {window:,}"
        )
    if config.server.max_message_bytes > MAX_GRPC_MESSAGE_BYTES:
        raise ConfigError(
            f"server.max_message_bytes: gRPC takes at most {MAX_GRPC_MESSAGE_BYTES:,},"
            f" got {config.server.max_message_bytes:,}"
        )
    for name, number in (
        ("limits.max_clock_skew_seconds", config.limits.max_clock_skew_seconds),
        ("server.shutdown_drain_seconds", config.server.shutdown_drain_seconds),
        ("server.shutdown_grace_seconds", config.server.shutdown_grace_seconds),
        ("server.max_connection_age_seconds", config.server.max_connection_age_seconds),
        ("server.keepalive_seconds", config.server.keepalive_seconds),
        ("login.app_cache_entries", config.login.app_cache_entries),
        ("login.app_cache_bytes", config.login.app_cache_bytes),
        ("login.held_inventory_bytes", config.login.held_inventory_bytes),
        *((f"retention.{f.name}", getattr(config.retention, f.name)) for f in dataclasses.fields(RetentionConfig)),
    ):
        if number < 0:
            raise ConfigError(f"{name}: must not be negative, got {number}")
    if config.login.fail_mode not in _FAIL_MODES:
        raise ConfigError(f"login.fail_mode: expected one of {', '.join(_FAIL_MODES)}, got {config.login.fail_mode!r}")
    if config.logging.level not in _LOG_LEVELS:
        raise ConfigError(f"logging.level: expected one of {', '.join(_LOG_LEVELS)}, got {config.logging.level!r}")
    for name, urls in (("blocklist.feed_urls", config.feed_urls), ("commands.endpoint_urls", config.command_endpoints)):
        for url in urls:
            if not url.startswith(("https://", "http://")):
                raise ConfigError(f"{name}: expected http(s) URLs, got {url[:60]!r}")
    _validate_commands(config.commands, config.command_endpoints)
    _validate_transport(config.server, config.auth)
    if config.store.url and not config.store.url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ConfigError(
            "store.url: expected sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE,"
            f" got {config.store.url.split(':')[0]}://…"
        )


def _validate_commands(commands: CommandsConfig, endpoints: tuple[str, ...]) -> None:
    if endpoints and not (commands.hmac_secret_file or commands.ed25519_key_file):
        raise ConfigError(
            "commands.endpoint_urls is set but no signing key is: set commands.hmac_secret_file and/or"
            " commands.ed25519_key_file (mtsg commands keys generate makes them); unsigned commands are never sent"
        )
    if bool(commands.client_cert_file) != bool(commands.client_key_file):
        raise ConfigError("commands.client_cert_file and commands.client_key_file go together: set both or neither")
    if commands.lease_seconds <= commands.request_timeout_seconds:
        raise ConfigError(
            f"commands.lease_seconds ({commands.lease_seconds:g}) must exceed commands.request_timeout_seconds"
            f" ({commands.request_timeout_seconds:g}), or a slow delivery could be sent twice"
        )


def _validate_transport(server: ServerConfig, auth: AuthConfig) -> None:
    if bool(server.tls_cert_file) != bool(server.tls_key_file):
        raise ConfigError("server.tls_cert_file and server.tls_key_file must be set together")
    if server.tls_client_ca_file and not server.tls_cert_file:
        raise ConfigError("server.tls_client_ca_file needs TLS: set server.tls_cert_file and server.tls_key_file")
    if auth.insecure and (auth.identities_file or server.tls_cert_file):
        raise ConfigError(
            "auth.insecure turns authentication off: it cannot be combined with auth.identities_file or TLS"
        )


def require_transport_choice(config: Config) -> None:
    """Serving needs identities or the explicit insecure choice; other commands do not, so this is not in _validate."""
    if not config.auth.insecure and not config.auth.identities_file:
        raise ConfigError(
            "no identities: set auth.identities_file (callers and their roles; `mtsg auth token` makes entries)"
            " or, on a developer's machine only, auth.insecure = true (`mtsg serve --insecure`)"
        )


def load_config(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[Key, tuple[Any, str]] | None = None,
) -> LoadedConfig:
    """Merge the layers; ``overrides`` maps (section, key) to (value, "flag --name")."""
    sections = _sections()
    merged: dict[Key, tuple[Any, str]] = {}
    if path is not None:
        merged.update({key: (value, f"file {path}") for key, value in _read_file(path).items()})
    environ = os.environ if environ is None else environ
    merged.update(_read_env(environ))
    merged.update(overrides or {})

    built: dict[str, Any] = {}
    sources: dict[Key, str] = {}
    for section, section_type in sections.items():
        values: dict[str, Any] = {}
        for name, wanted in _field_types(section_type).items():
            key = (section, name)
            if key in merged:
                raw, origin = merged[key]
                values[name] = _coerce(key, raw, wanted, origin)
                sources[key] = origin
            else:
                sources[key] = "default"
        built[section] = section_type(**values)
    config = Config(**built)
    _validate(config)
    return LoadedConfig(config, sources, _ignored_variables(environ))


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def render_config(loaded: LoadedConfig) -> str:
    """The effective configuration as TOML, each key annotated with where its value came from."""
    lines: list[str] = []
    for section in _sections():
        lines.append(f"[{section}]")
        section_value = getattr(loaded.config, section)
        for name in _field_types(type(section_value)):
            value = getattr(section_value, name)
            if (section, name) == ("store", "url"):
                value = redact(value)  # a DSN may carry the database password
            elif (section, name) in _URL_LISTS and value:
                value = " ".join(without_secrets(url) for url in _urls(value))  # a feed's token, say
            lines.append(f"{name} = {toml_value(value)}  # {loaded.sources[(section, name)]}")
        lines.append("")
    lines.extend(f"# ignored: {note}" for note in loaded.ignored_variables)
    return "\n".join(lines) + ("\n" if loaded.ignored_variables else "")
