"""Where the gateway's time goes, as throughput: the login path served with its later parts taken out.

``mtsg bench`` holds the gateway against a bare echo server.  This script answers the next
question, what in between costs how much, by serving the same CheckLogin contract at growing
depths and measuring each with ``mtsg bench --quick --target`` (each beside its own echo run):

    plain        a grpc.aio server with the real message types that answers a constant
    interceptor  mtsg serve, the call answered with a constant once our interceptor let it in
    validate     ... after parsing and checking the telemetry
    no-store     the whole login path, the store answering from nothing and storing nothing
    no-reads     the whole path with its writes, the history reads answering from nothing
    full         mtsg serve as shipped

The levels above ``full`` replace methods of the running gateway in this script's process only;
nothing of them is in the product.  One process serves each level, so its calls a second are
bounded by the event loop: ``1/rate`` is the loop time a call costs, and the step from one level
to the next is what the added part costs.  Every level but ``plain`` is ``mtsg serve``, so its
own ``/metrics`` are read too (``--target-metrics``): the last column is the share of the half-rate
logins the server itself answered within 10 ms, beside the p99 its clients saw.

Usage:  python scripts/bench_ladder.py [--rounds N] [--levels plain,full,...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.bench.processes import free_port, tethered_module
from gateway.bench.runner import replay_limits
from gateway.bench.stages import InsideGateway, share_cell

LEVELS = ("plain", "interceptor", "validate", "no-store", "no-reads", "full")


def _constant_answer() -> Any:
    """What every level short of the whole path answers, whatever the login."""
    from gateway.generated.mtsg.v1 import threat_signal_service_pb2

    return threat_signal_service_pb2.CheckLoginResponse(verdict_id="v_constant")


def _serve_plain(port: int) -> None:
    import grpc

    from gateway.generated.mtsg.v1 import event_service_pb2, event_service_pb2_grpc
    from gateway.generated.mtsg.v1 import threat_signal_service_pb2_grpc as threat_signal_grpc

    answer = _constant_answer()

    class Logins(threat_signal_grpc.ThreatSignalServiceServicer):
        async def CheckLogin(self, request: Any, context: Any) -> Any:
            return answer

    class Events(event_service_pb2_grpc.EventServiceServicer):
        async def ReportPhoneNumberChange(self, request: Any, context: Any) -> Any:
            return event_service_pb2.ReportPhoneNumberChangeResponse()

    async def serve() -> None:
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 8 << 20)])
        threat_signal_grpc.add_ThreatSignalServiceServicer_to_server(Logins(), server)
        event_service_pb2_grpc.add_EventServiceServicer_to_server(Events(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(serve())


def _take_out(level: str) -> None:
    """Replace the parts of the login path that ``level`` leaves out, in this process."""
    from gateway.login.validation import parse_check_login
    from gateway.services.threat_signal import ThreatSignalService
    from gateway.store.records import LoginHistory, RecordedFreeze, StoredVerdict
    from gateway.store.sql_store import SQLStore

    answer = _constant_answer()

    async def constant(self: ThreatSignalService, request: Any, context: Any) -> Any:
        return answer

    async def validated_constant(self: ThreatSignalService, request: Any, context: Any) -> Any:
        parse_check_login(request, self._settings.limits, self._clock(), self._checked_apps)
        return answer

    async def no_history(self: SQLStore, customer_id: str, device_id: str, *args: Any) -> LoginHistory:
        return LoginHistory(frozenset(), None)

    async def nothing_stored(self: SQLStore, record: Any) -> StoredVerdict:
        return StoredVerdict(record.verdict_id, record.request_fingerprint, record.response)

    async def no_freeze_stored(self: SQLStore, record: Any, **options: Any) -> RecordedFreeze:
        return RecordedFreeze(await nothing_stored(self, record), held_back=False, tripped_valve=False)

    replaced: dict[str, list[tuple[type, str, Any]]] = {
        "interceptor": [(ThreatSignalService, "CheckLogin", constant)],
        "validate": [(ThreatSignalService, "CheckLogin", validated_constant)],
        "no-store": [
            (SQLStore, "load_login_history", no_history),
            (SQLStore, "record_login", nothing_stored),
            (SQLStore, "record_freeze", no_freeze_stored),
        ],
        "no-reads": [(SQLStore, "load_login_history", no_history)],
        "full": [],
    }
    for owner, name, replacement in replaced[level]:
        if not callable(getattr(owner, name, None)):  # renamed in the product: this level would measure nothing
            raise RuntimeError(f"{owner.__name__}.{name} is gone; bring scripts/bench_ladder.py up to date")
        setattr(owner, name, replacement)


def serve(level: str, port: int, metrics_port: int) -> int:
    """Serve ``level`` on ``port`` (its /metrics on ``metrics_port``, but for ``plain``) until terminated."""
    if level == "plain":
        _serve_plain(port)
        return 0
    _take_out(level)
    from gateway.cli.main import main

    arguments = [
        "serve",
        "--insecure",
        "--listen",
        f"127.0.0.1:{port}",
        "--metrics-listen",
        f"127.0.0.1:{metrics_port}",
    ]
    with tempfile.TemporaryDirectory(prefix=f"mtsg-ladder-{level}-") as data_dir:  # mtsg serve stops on SIGTERM
        return main([*arguments, "--data-dir", data_dir])


def _wait_until_serving(port: int, server: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    import grpc

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode} before serving")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=1)
                return
            except grpc.FutureTimeoutError:
                continue
    raise RuntimeError(f"nothing served on port {port} within {timeout:g} s")


def measure(level: str, bench_arguments: Sequence[str]) -> dict[str, float]:
    """One bench run against ``level``: the calls a second of echo and of the level, and the level's half-rate p99."""
    port, metrics_port = free_port(), free_port()
    environment = {**os.environ, **replay_limits()}  # as the bench's own gateway runs
    command = [
        *tethered_module(__file__),
        "--serve",
        level,
        "--port",
        str(port),
        "--metrics-port",
        str(metrics_port),
    ]
    # Every level but the bare server is mtsg serve: its own answer times are read beside the clients'.
    read_metrics = ["--target-metrics", f"127.0.0.1:{metrics_port}"] if level != "plain" else []
    with tempfile.TemporaryDirectory(prefix="mtsg-ladder-") as scratch:
        log = Path(scratch) / "server.log"
        with log.open("wb") as stream:
            server = subprocess.Popen(command, env=environment, stdout=stream, stderr=stream)
        try:
            _wait_until_serving(port, server)
            figures = Path(scratch) / "bench.json"
            bench = [*tethered_module("gateway.cli"), "bench", "--quick", "--deliveries", "0"]
            bench += ["--target", f"127.0.0.1:{port}", *read_metrics, "--json", str(figures), *bench_arguments]
            subprocess.run(bench, env=environment, check=True, stdout=subprocess.DEVNULL)
            rows = {row["server"]: row for row in json.loads(figures.read_text())["figures"]}
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {
        "echo": rows["echo"]["throughput_per_second"],
        "rate": rows["gateway"]["throughput_per_second"],
        "half_rate_p99_ms": rows["gateway 1/2"]["p99_ms"],
        "half_rate_inside_10ms": _share_within(rows["gateway 1/2"]["inside"], 10.0),
        "errors": float(sum(rows["gateway"]["errors"].values())),
    }


def _share_within(inside: dict[str, Any] | None, bound_ms: float) -> float:
    """The share of a run's logins the server itself answered within ``bound_ms`` (its JSON row); NaN when not read."""
    if inside is None:
        return math.nan
    share = InsideGateway(inside["logins"], tuple(map(tuple, inside["within"]))).share_within(bound_ms)
    return math.nan if share is None else share


def _report(round_number: int, results: dict[str, dict[str, float]]) -> None:
    print(f"round {round_number}:")
    header = [("req/s", 7), ("of echo", 8), ("1/rate ms", 10), ("step ms", 8), ("1/2 p99 ms", 11)]
    header += [("1/2 inside <10 ms", 18), ("errors", 7)]
    print(f"  {'level':<12}" + "".join(f" {name:>{width}}" for name, width in header))
    previous: float | None = None
    for level, figures in results.items():
        per_call = 1000 / figures["rate"] if figures["rate"] else float("inf")
        step = f"{per_call - previous:+.3f}" if previous is not None else ""
        share = figures["rate"] / figures["echo"] if figures["echo"] else 0.0
        inside = figures["half_rate_inside_10ms"]  # NaN: a level with no /metrics of its own
        print(
            f"  {level:<12} {figures['rate']:>7.0f} {share:>8.0%} {per_call:>10.3f} {step:>8}"
            f" {figures['half_rate_p99_ms']:>11.2f} {share_cell(None if math.isnan(inside) else inside):>18}"
            f" {figures['errors']:>7.0f}"
        )
        previous = per_call
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=1, help="times through every level (default 1)")
    parser.add_argument("--levels", default=",".join(LEVELS), help=f"comma-separated, of {', '.join(LEVELS)}")
    parser.add_argument("--serve", choices=LEVELS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--metrics-port", type=int, default=0, help=argparse.SUPPRESS)
    options, bench_arguments = parser.parse_known_args(argv)
    if options.serve:
        return serve(options.serve, options.port, options.metrics_port)
    levels = [level.strip() for level in options.levels.split(",") if level.strip()]
    unknown = [level for level in levels if level not in LEVELS]
    if unknown or not levels or options.rounds < 1:
        print(f"bench_ladder: levels must be some of {', '.join(LEVELS)} and --rounds positive", file=sys.stderr)
        return 2
    for round_number in range(1, options.rounds + 1):
        results = {}
        for level in levels:
            print(f"[ladder] round {round_number}: {level}", file=sys.stderr, flush=True)
            results[level] = measure(level, bench_arguments)
        _report(round_number, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
