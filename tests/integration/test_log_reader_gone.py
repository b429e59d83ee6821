"""A gateway whose log can no longer be written keeps answering logins and storing them.

`mtsg serve 2>&1 | shipper`: when the shipper goes, every write to stderr fails.  Before, that
failure rose into the login that logged and every CheckLogin was answered UNKNOWN.  When the
shipper hangs instead, every write would wait: before, the gateway stopped answering.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx

from gateway.client import MtsgClient
from gateway.generated.mtsg.v1 import common_pb2
from tests.helpers import freezing_login, telemetry
from tests.integration.conftest import serve_command


def _read_until_serving(process: subprocess.Popen[str]) -> dict[str, object]:
    assert process.stderr is not None
    for line in process.stderr:
        entry = json.loads(line)
        if entry.get("message") == "serving":
            return dict(entry)
    raise AssertionError(f"mtsg serve ended before serving (exit {process.wait(timeout=10)})")


async def _logins(target: str) -> list[int]:
    async with MtsgClient(target, timeout=10) as client:
        return [(await client.check_login(message)).action for message in (telemetry(), freezing_login(), telemetry())]


def _dropped(metrics_port: object) -> float:
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    return float(
        next(line for line in text.splitlines() if line.startswith("mtsg_log_lines_dropped_total ")).split()[1]
    )


def test_logins_are_answered_and_stored_after_the_reader_of_the_log_is_gone(tmp_path: Path) -> None:
    command = [*serve_command(tmp_path / "d"), "--metrics-listen", "127.0.0.1:0"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        serving = _read_until_serving(process)
        assert process.stderr is not None
        process.stderr.close()  # the shipper is gone: the next write gets EPIPE

        actions = asyncio.run(_logins(f"127.0.0.1:{serving['port']}"))

        assert actions == [common_pb2.ACTION_ALLOW, common_pb2.ACTION_FREEZE, common_pb2.ACTION_ALLOW]
        assert _dropped(serving["metrics_port"]) > 0
        with sqlite3.connect(tmp_path / "d" / "mtsg.sqlite3") as database:
            assert database.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0] == 3
            assert database.execute("SELECT COUNT(*) FROM commands").fetchone()[0] == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0  # and it still stops cleanly
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def _lines_until_serving(reader: int) -> dict[str, object]:
    """Read the log from the pipe's read end until the gateway serves; then the test stops reading."""
    pending = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        chunk = os.read(reader, 65536)
        if not chunk:
            break
        pending += chunk
        for line in pending.split(b"\n"):
            if line.startswith(b"{") and json.loads(line).get("message") == "serving":
                return dict(json.loads(line))
    raise AssertionError(f"mtsg serve did not serve; its log: {pending[-2000:]!r}")


def test_logins_are_answered_while_the_reader_of_the_log_stops_reading(tmp_path: Path) -> None:
    """A shipper that hangs: before, the pipe's 64 KiB filled after about 280 logins and the gateway stopped."""
    reader, writer = os.pipe()
    command = [*serve_command(tmp_path / "d"), "--metrics-listen", "127.0.0.1:0"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=writer, cwd=tmp_path)
    os.close(writer)
    try:
        serving = _lines_until_serving(reader)

        actions = asyncio.run(_many_logins(f"127.0.0.1:{serving['port']}", 1000))  # about 250 KB of log

        assert actions == {common_pb2.ACTION_ALLOW: 1000}
        assert _dropped(serving["metrics_port"]) > 0
        os.set_blocking(reader, False)
        while True:  # the reader catches up
            try:
                if not os.read(reader, 65536):
                    break
            except BlockingIOError:
                break
        assert asyncio.run(_many_logins(f"127.0.0.1:{serving['port']}", 1)) == {common_pb2.ACTION_ALLOW: 1}
        time.sleep(0.2)
        os.set_blocking(reader, True)
        assert b'"method": "/mtsg.v1.ThreatSignalService/CheckLogin"' in os.read(reader, 65536)  # logging again
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        os.close(reader)


async def _many_logins(target: str, count: int) -> dict[int, int]:
    answered: dict[int, int] = {}
    async with MtsgClient(target, timeout=5) as client:
        for _ in range(count):
            action = (await client.check_login(telemetry())).action
            answered[action] = answered.get(action, 0) + 1
    return answered
