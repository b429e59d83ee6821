"""A gateway whose log can no longer be written keeps answering logins and storing them.

`mtsg serve 2>&1 | shipper`: when the shipper goes, every write to stderr fails.  Before, that
failure rose into the login that logged and every CheckLogin was answered UNKNOWN.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
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
