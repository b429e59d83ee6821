"""A real ``mtsg serve`` process for the integration tests, reading its JSON log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

MTSG = [sys.executable, "-m", "gateway.cli"]


class ServeProcess:
    def __init__(self, process: subprocess.Popen[str], target: str, log: list[dict[str, object]]) -> None:
        self.process = process
        self.target = target
        self.log = log

    def read_log_until(self, message: str, timeout: float = 30) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        assert self.process.stderr is not None
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line:
                raise AssertionError(f"mtsg serve ended before logging {message!r}; log so far: {self.log}")
            entry = json.loads(line)
            self.log.append(entry)
            if entry.get("message") == message:
                return entry
        raise AssertionError(f"no {message!r} in the log within {timeout}s")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    process = subprocess.Popen(
        [
            *MTSG,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--data-dir",
            str(tmp_path / "d"),
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        # A drain longer than the default, so a loaded CI machine still receives every call sent before SIGTERM.
        env={**os.environ, "MTSG_SERVER_SHUTDOWN_DRAIN_SECONDS": "3"},
    )
    running = ServeProcess(process, "", [])
    running.target = f"127.0.0.1:{running.read_log_until('serving')['port']}"
    yield running
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)
