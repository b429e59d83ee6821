"""Calls grpc refuses itself are logged and counted as what the caller was told, at a client's level.

A request past ``server.max_message_bytes``, or an ``authorization`` header past grpc's metadata limit,
gets RESOURCE_EXHAUSTED from grpc before the gateway answers. Any caller can send either without a
token, so neither may write an error-level traceback, nor a log line or a refusal count claiming an
answer (INVALID_ARGUMENT, UNAUTHENTICATED) that never left.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import grpc
import httpx

from gateway.security.identities import new_token, token_stanza
from tests.helpers import request, telemetry
from tests.integration.conftest import MTSG, LoggedProcess

CHECK_LOGIN = "/mtsg.v1.ThreatSignalService/CheckLogin"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _lines(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def test_grpcs_own_refusals_are_logged_as_resource_exhausted_without_a_traceback(tmp_path: Path) -> None:
    token = new_token()
    identities = tmp_path / "identities.toml"
    identities.write_text(token_stanza("bank-app", ["app"], token))
    metrics_port = _free_port()
    env = {**os.environ, "MTSG_AUTH_IDENTITIES_FILE": str(identities)}
    arguments = ["serve", "--listen", "127.0.0.1:0", "--metrics-listen", f"127.0.0.1:{metrics_port}"]
    process = LoggedProcess([*MTSG, *arguments, "--data-dir", str(tmp_path / "d")], tmp_path / "gw.log", env, tmp_path)
    try:
        target = f"127.0.0.1:{process.wait_for_log('serving')['port']}"
        identity = lambda data: data  # noqa: E731 - raw bytes both ways
        options = [("grpc.max_send_message_length", 16 * 1024 * 1024), ("grpc.max_metadata_size", 1024 * 1024)]
        with grpc.insecure_channel(target, options=options) as channel:
            check = channel.unary_unary(CHECK_LOGIN, identity, identity)
            told = []
            for body, metadata in (
                (b"\x0a" + b"\xff" * (5 * 1024 * 1024), [("authorization", f"Bearer {token}")]),
                (request(telemetry()).SerializeToString(), [("authorization", "Bearer " + "x" * 100_000)]),
            ):
                try:
                    check(body, metadata=metadata, timeout=10)
                except grpc.RpcError as error:
                    told.append(error.code())  # type: ignore[attr-defined]
            assert told == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2
        deadline = time.monotonic() + 10
        while len(rpcs := [line for line in _lines(process.log_path) if line.get("message") == "rpc"]) < 2:
            assert time.monotonic() < deadline, process.log_path.read_text()[-3000:]
            time.sleep(0.1)
        assert [(line["code"], line.get("reason")) for line in rpcs] == [("RESOURCE_EXHAUSTED", "TRANSPORT_LIMIT")] * 2
        assert [line for line in _lines(process.log_path) if line.get("level") == "error"] == []
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        refusals = [line for line in metrics.splitlines() if line.startswith("mtsg_rpc_refusals_total{")]
        assert refusals == [f'mtsg_rpc_refusals_total{{method="{CHECK_LOGIN}",reason="TRANSPORT_LIMIT"}} 2.0']
    finally:
        process.stop()
