"""scripts/bench_ladder.py serves each level with just the parts it names taken out (the figures are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from gateway.bench.processes import free_port
from tests.integration.conftest import run_mtsg

LADDER = Path(__file__).resolve().parents[2] / "scripts" / "bench_ladder.py"
EXAMPLE = Path(__file__).resolve().parents[2] / "gateway" / "examples" / "clean-login.json"


@contextmanager
def _level(name: str) -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-P", str(LADDER), "--serve", name, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def _check(target: str, login: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_mtsg("check", str(login), "--target", target, cwd=cwd)


def test_each_level_takes_out_only_what_it_names(tmp_path: Path) -> None:
    envelope = json.loads(EXAMPLE.read_text())
    envelope["login"]["telemetry"]["installed_apps"][0]["package_name"] = ""
    malformed = tmp_path / "malformed.json"
    malformed.write_text(json.dumps(envelope))

    with _level("interceptor") as target:  # nothing of the login is read
        assert "verdict v_constant" in _check(target, EXAMPLE, tmp_path).stdout
        assert "verdict v_constant" in _check(target, malformed, tmp_path).stdout
    with _level("validate") as target:  # the telemetry is checked, nothing after it runs
        assert "verdict v_constant" in _check(target, EXAMPLE, tmp_path).stdout
        refused = _check(target, malformed, tmp_path)
        assert refused.returncode != 0 and "v_constant" not in refused.stdout
    with _level("no-store") as target:  # the whole path decides; the store is left out
        answered = _check(target, EXAMPLE, tmp_path)
        assert answered.returncode == 0 and answered.stdout.startswith("ALLOW")
        assert "v_constant" not in answered.stdout
