"""The ``mtsg`` command line: serve, check, config show."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import structlog

from gateway.cli.support import number_within, positive_number
from gateway.config import ConfigError, Key, LoadedConfig, load_config, render_config
from gateway.observability.version import version_line
from gateway.security.client_credentials import ClientCredentials, ClientCredentialsError
from signals.wording import counted

_STORE_FLAGS: tuple[tuple[str, Key, str], ...] = (
    ("--data-dir", ("store", "data_dir"), "directory for the SQLite database and keys (default ./mtsg-data)"),
)
_SERVER_FLAGS: tuple[tuple[str, Key, str], ...] = (
    ("--listen", ("server", "listen"), "HOST:PORT for gRPC (default 127.0.0.1:50051)"),
    *_STORE_FLAGS,
    ("--metrics-listen", ("server", "metrics_listen"), "HOST:PORT for Prometheus /metrics; '' disables it"),
)


def _add_flags(parser: argparse.ArgumentParser, flags: tuple[tuple[str, Key, str], ...]) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration file")
    for flag, _, text in flags:
        parser.add_argument(flag, metavar=flag.removeprefix("--").upper().replace("-", "_"), help=text)


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """For ``serve`` and ``config show``: the configuration, with the ports a gateway serves on."""
    _add_flags(parser, _SERVER_FLAGS)


def _add_store_flags(parser: argparse.ArgumentParser) -> None:
    """For the commands that work on an installation's store: which one; a port would mean nothing to them."""
    _add_flags(parser, _STORE_FLAGS)


# The bench's durations: from 0 to a day (nan and inf failed deep inside the run).
_bench_seconds = number_within(0.0, 86400.0, "a number of seconds")
_MAX_CALL_TIMEOUT_SECONDS = 3600.0


def _call_timeout(text: str) -> float:
    """An argparse type for one call's --timeout: above 0 and at most an hour.  gRPC turns a deadline past
    about 300 years into one already passed, so --timeout 1e10 failed at once with DEADLINE_EXCEEDED."""
    value = positive_number(text)
    if value > _MAX_CALL_TIMEOUT_SECONDS:
        raise argparse.ArgumentTypeError(f"expected at most {_MAX_CALL_TIMEOUT_SECONDS:g} seconds, got {text!r}")
    return value


def _loaded_config(options: argparse.Namespace) -> LoadedConfig:
    overrides: dict[Key, tuple[Any, str]] = {}
    if getattr(options, "insecure", False):
        overrides[("auth", "insecure")] = (True, "flag --insecure")
    if getattr(options, "workers", None) is not None:
        overrides[("server", "workers")] = (options.workers, "flag --workers")
    for flag, key, _ in _SERVER_FLAGS:
        value = getattr(options, flag.removeprefix("--").replace("-", "_"), None)
        if value is not None:
            overrides[key] = (value, f"flag {flag}")
    return load_config(options.config, overrides=overrides)


def _add_client_flags(parser: argparse.ArgumentParser) -> None:
    """How a command proves itself to a gateway that runs with TLS and identities."""
    from gateway.client import DEFAULT_TARGET

    parser.add_argument(
        "--target",
        help=f"gateway HOST:PORT (default: the {TARGET_VARIABLE} variable, else where the configuration's"
        f" server.listen serves, as `mtsg serve` reads it: {DEFAULT_TARGET} by default)",
    )
    parser.add_argument("--config", type=Path, help="the gateway's TOML configuration, for its address")
    parser.add_argument("--ca", type=Path, metavar="FILE", help="CA certificate (PEM): connect with TLS")
    parser.add_argument("--cert", type=Path, metavar="FILE", help="client certificate (PEM) for mTLS")
    parser.add_argument("--key", type=Path, metavar="FILE", help="client private key (PEM) for mTLS")
    parser.add_argument(
        "--token-file", type=Path, metavar="FILE", help="bearer token file (default: the MTSG_TOKEN variable)"
    )
    parser.add_argument("--server-name", default="", help="name to verify in the server certificate")


TARGET_VARIABLE = "MTSG_TARGET"


def client_address(listen: str) -> str:
    """Where a client on this host reaches a gateway listening on ``listen``: a wildcard host becomes loopback."""
    host, _, port = listen.rpartition(":")
    if host in ("", "0.0.0.0", "*"):
        host = "127.0.0.1"
    elif host in ("[::]", "::"):
        host = "[::1]"
    return f"{host}:{port}"


def _target(options: argparse.Namespace) -> str:
    """--target, else MTSG_TARGET, else the address `mtsg serve` would listen on with the same configuration."""
    if options.target:
        return str(options.target)
    if os.environ.get(TARGET_VARIABLE):
        return os.environ[TARGET_VARIABLE]
    listen = load_config(options.config).config.server.listen
    if listen.rpartition(":")[2] == "0":
        raise ConfigError(f"server.listen is {listen!r}: port 0 names no port to reach; pass --target HOST:PORT")
    return client_address(listen)


def _client_credentials(options: argparse.Namespace, command: str) -> ClientCredentials | None:
    try:
        return ClientCredentials.from_options(
            options.ca, options.cert, options.key, options.token_file, options.server_name
        )
    except ClientCredentialsError as error:
        print(f"mtsg {command}: {error}", file=sys.stderr)
        return None


def _serve(options: argparse.Namespace) -> int:
    from gateway.observability.logging_setup import configure_logging
    from gateway.server.start import STARTUP_ERRORS, run_gateway
    from gateway.server.workers import serve_workers

    loaded = _loaded_config(options)
    config = loaded.config
    configure_logging(config.logging.level)
    for note in loaded.ignored_variables:
        structlog.get_logger(__name__).warning("ignored environment variable", note=note)
    try:
        if config.server.workers > 1:
            return serve_workers(config)
        asyncio.run(run_gateway(config))
    except STARTUP_ERRORS as error:
        print(f"mtsg serve: {error}", file=sys.stderr)
        return 1
    return 0


def _config_show(options: argparse.Namespace) -> int:
    print(render_config(_loaded_config(options)), end="")
    return 0


def _config_reference(options: argparse.Namespace) -> int:
    from gateway.cli.config_reference import render_reference

    print(render_reference(), end="")
    return 0


def _check(options: argparse.Namespace) -> int:
    from gateway.cli.check import (
        CheckFileError,
        build_plan,
        example_text,
        format_verdict,
        read_check_file,
        read_held_digests,
        run_plan,
        verdict_json,
        write_held_digests,
    )
    from gateway.client import field_violations, request_id_of

    try:
        text = example_text(options.example) if options.example else read_check_file(options.file)
        plan = build_plan(text)
        held_digests = read_held_digests(options.inventory_digests) if options.inventory_digests else None
    except CheckFileError as error:
        print(f"mtsg check: {error}", file=sys.stderr)
        return 2
    credentials = _client_credentials(options, "check")
    if credentials is None:
        return 2
    target = _target(options)
    try:
        try:
            response = asyncio.run(run_plan(target, plan, options.timeout, credentials, held_digests))
        finally:
            if held_digests is not None:  # what the gateway acknowledged, or forgot, before any failure
                write_held_digests(options.inventory_digests, held_digests)
    except grpc.aio.AioRpcError as error:
        if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            print(f"mtsg check: cannot reach the gateway at {target}: {error.details()}", file=sys.stderr)
        else:
            violations = field_violations(error)
            # The details repeat the first violation; the list below says them all, once each.
            said = (
                f"the gateway refused the request, {counted(len(violations), 'problem')}:"
                if violations
                else error.details()
            )
            print(f"mtsg check: {error.code().name}: {said}", file=sys.stderr)
            for field, description in violations:
                print(f"  {field or '(request)'}: {description}", file=sys.stderr)
            request_id = request_id_of(error)
            if request_id is not None:
                print(f"  request id: {request_id} (quote it to the gateway's operators)", file=sys.stderr)
        return 1
    print(verdict_json(response) if options.json else format_verdict(response))
    return 0


def _health(options: argparse.Namespace) -> int:
    from grpc_health.v1 import health_pb2

    from gateway.client import MtsgClient

    credentials = _client_credentials(options, "health")
    if credentials is None:
        return 2
    target = _target(options)

    async def ask() -> str:
        async with MtsgClient(target, timeout=options.timeout, credentials=credentials) as client:
            return health_pb2.HealthCheckResponse.ServingStatus.Name(await client.health(options.service))

    try:
        status = asyncio.run(ask())
    except grpc.aio.AioRpcError as error:
        print(f"mtsg health: {target}: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    print(status)
    return 0 if status == "SERVING" else 1


def _bench(options: argparse.Namespace) -> int:
    from gateway.bench.curve import parse_shares
    from gateway.bench.runner import LARGE, QUICK, BenchSettings, render_report, run_bench, write_json
    from gateway.bench.stages import metrics_url, unreadable_metrics

    base = LARGE if options.preset == "large" else QUICK if options.quick else BenchSettings()
    overrides = {
        name: getattr(options, name)
        for name in (
            "clients",
            "concurrency",
            "rate",
            "seconds",
            "warmup_seconds",
            "seed",
            "target",
            "registry_entries",
            "deliveries",
            "workers",
        )
        if getattr(options, name) is not None
    }
    if options.sweep is not None:
        try:
            overrides["sweep"] = parse_shares(options.sweep)
        except ValueError as error:
            print(f"mtsg bench: --sweep: {error}", file=sys.stderr)
            return 2
    if options.registry_only:
        overrides["registry_only"] = True
        overrides.setdefault("registry_entries", base.registry_entries or 100_000)
    if options.inventory == "list":
        overrides["by_digest"] = False
    settings = replace(base, **overrides)
    counts = (settings.clients, settings.concurrency, settings.workers)
    if min(counts) < 1 or settings.seconds <= 0:  # --rate is checked as it is parsed
        print("mtsg bench: --clients, --concurrency, --workers and --seconds must be positive", file=sys.stderr)
        return 2
    if settings.deliveries < 0:
        print("mtsg bench: --deliveries must not be negative", file=sys.stderr)
        return 2
    if settings.registry_entries < 0:
        print("mtsg bench: --registry-entries must not be negative", file=sys.stderr)
        return 2
    if settings.sweep and settings.rate:
        print("mtsg bench: --sweep measures shares of a closed loop's rate; it cannot run with --rate", file=sys.stderr)
        return 2
    if options.target_metrics:
        if not settings.target:
            print(
                "mtsg bench: --target-metrics reads the gateway given by --target; the gateway the bench starts"
                " is read without it",
                file=sys.stderr,
            )
            return 2
        settings = replace(settings, target_metrics=tuple(metrics_url(each) for each in options.target_metrics))
        if problem := unreadable_metrics(settings.target_metrics):
            print(f"mtsg bench: --target-metrics: {problem}", file=sys.stderr)
            return 2
    result = run_bench(settings)
    print(render_report(result, settings))
    if options.json:
        write_json(options.json, result, settings)
    unanswered = [row.server for row in result.figures if not row.answered]
    if unanswered:
        where = settings.target or "the gateway the bench started"
        runs = "the run" if len(unanswered) == 1 else "the runs"
        print(
            f"mtsg bench: no call was answered in {runs} {', '.join(unanswered)}; is {where} serving"
            " (address, TLS, credentials)?",
            file=sys.stderr,
        )
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    from gateway.bench.curve import DEFAULT_SWEEP
    from gateway.cli.check import EXAMPLES

    parser = argparse.ArgumentParser(prog="mtsg", description="Mobile Threat-Signal Gateway")
    parser.add_argument("--version", action="version", version=version_line())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway")
    _add_config_flags(serve)
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="plain text, no authentication (auth.insecure): a developer's machine only, never a bank's traffic",
    )
    serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="gateway processes sharing the port and the store (server.workers; default 1): about one per core",
    )
    serve.set_defaults(run=_serve)

    check = commands.add_parser("check", help="send a login to a gateway and print the verdict")
    _add_client_flags(check)
    source = check.add_mutually_exclusive_group(required=True)
    source.add_argument("file", nargs="?", type=Path, help="JSON file with a CheckLoginRequest or an envelope")
    source.add_argument("--example", choices=EXAMPLES, help="one of the examples shipped with mtsg")
    check.add_argument("--json", action="store_true", help="print the verdict as JSON (proto JSON mapping)")
    check.add_argument("--timeout", type=_call_timeout, default=10.0, help="seconds per call (default 10)")
    check.add_argument(
        "--inventory-digests",
        type=Path,
        metavar="FILE",
        help="send the inventory by digest, as an SDK does: FILE (JSON, created if missing) remembers the digest"
        " the gateway holds per device, so an unchanged inventory goes as its digest alone",
    )
    check.set_defaults(run=_check)

    health = commands.add_parser("health", help="ask a gateway's health service; exit 0 only when SERVING")
    _add_client_flags(health)
    health.add_argument(
        "--service", default="", help="a service name, e.g. mtsg.v1.ThreatSignalService (default: overall)"
    )
    health.add_argument("--timeout", type=_call_timeout, default=5.0, help="seconds (default 5)")
    health.set_defaults(run=_health)

    bench = commands.add_parser("bench", help="measure the gateway against a bare gRPC echo server")
    bench.add_argument("--target", help="measure a running gateway at HOST:PORT instead of starting one")
    bench.add_argument(
        "--target-metrics",
        action="append",
        metavar="HOST:PORT",
        help="with --target: where that gateway serves /metrics (or its URL), once per worker; the report then"
        " shows its stage timings, verdict mix and own answer times",
    )
    bench.add_argument("--quick", action="store_true", help="a short run (under a minute)")
    bench.add_argument("--clients", type=int, help="client processes (default 2)")
    bench.add_argument("--concurrency", type=int, help="calls in flight in closed loop, over all clients (default 32)")
    bench.add_argument("--rate", type=positive_number, help="open loop: calls per second over all clients")
    bench.add_argument("--seconds", type=_bench_seconds, help="measured seconds (default 15; 5 with --quick)")
    bench.add_argument(
        "--warmup-seconds", type=_bench_seconds, help="seconds before measuring (default 3; 1 with --quick)"
    )
    bench.add_argument("--seed", type=int, help="workload seed (default 1)")
    bench.add_argument(
        "--inventory",
        choices=("digest", "list"),
        default="digest",
        help="how clients send the app inventory: digest (default, as an SDK using inventory digests does)"
        " or list (every login carries its whole list, as an SDK without digests does)",
    )
    bench.add_argument("--workers", type=int, help="processes of the gateway started here (mtsg serve --workers)")
    bench.add_argument("--json", type=Path, metavar="FILE", help="also write every figure to FILE")
    bench.add_argument("--preset", choices=("large",), help="large: a 1,000,000-entry registry, 100,000 customers")
    bench.add_argument("--registry-entries", type=int, help="import a registry of N entries first and measure it")
    bench.add_argument("--registry-only", action="store_true", help="measure only the registry (import, matcher)")
    bench.add_argument(
        "--deliveries", type=int, help="FREEZE commands pushed to measure verdict-to-delivery (default 300; 0 skips)"
    )
    bench.add_argument(
        "--sweep",
        nargs="?",
        const=DEFAULT_SWEEP,
        metavar="SHARES",
        help="after the half-rate run, open loop at these shares of each server's closed-loop rate"
        f" (default {DEFAULT_SWEEP}): latency against load, and up to which load p99 stays under 10 ms",
    )
    bench.set_defaults(run=_bench)

    from gateway.cli.blocklist import add_registry_commands

    add_registry_commands(commands, _add_store_flags, lambda options: _loaded_config(options).config)

    from gateway.cli.commands import add_command_commands

    add_command_commands(commands, _add_store_flags, lambda options: _loaded_config(options).config)

    from gateway.cli.policy import add_policy_commands

    add_policy_commands(commands, _add_store_flags, lambda options: _loaded_config(options).config)

    from gateway.cli.valve import add_valve_commands

    add_valve_commands(commands, _add_store_flags, lambda options: _loaded_config(options).config)

    from gateway.cli.privacy import add_privacy_commands

    add_privacy_commands(commands, _add_store_flags, lambda options: _loaded_config(options).config)

    from gateway.cli.purge import add_purge_command

    add_purge_command(commands, _add_store_flags, lambda options: _loaded_config(options).config)

    from gateway.cli.auth import add_auth_commands

    add_auth_commands(commands)

    from gateway.cli.store import add_store_commands

    add_store_commands(commands, _add_store_flags, lambda options: _loaded_config(options).config)

    config = commands.add_parser("config", help="inspect configuration")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    show = config_commands.add_parser("show", help="print the effective configuration and where each value comes from")
    _add_config_flags(show)
    show.set_defaults(run=_config_show)
    reference = config_commands.add_parser(
        "reference", help="print every setting with its default, its variable and what it does (Markdown)"
    )
    reference.set_defaults(run=_config_reference)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    try:
        status = int(options.run(options))
        sys.stdout.flush()  # here, where a reader that went away is caught, rather than at exit
        return status
    except BrokenPipeError:
        # The reader of the output left (`mtsg verdicts list | head`): stop quietly, as a command ended
        # by SIGPIPE would, and give Python's own flush at exit somewhere to write the rest.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except ConfigError as error:
        print(f"mtsg: configuration error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
