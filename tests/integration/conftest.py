"""Real processes for the integration tests: ``mtsg serve`` reading its JSON log, and the reference
core-receiver with the signing keys the gateways push with."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import MTSG, run_mtsg

__all__ = ["MTSG", "run_mtsg"]


def serve_command(data_dir: Path | str) -> list[str]:
    """`mtsg serve` in developer mode on a free port, without metrics: what most process tests start."""
    return [
        *MTSG,
        "serve",
        "--insecure",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "",
        "--data-dir",
        str(data_dir),
    ]


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
            "--insecure",
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


class LoggedProcess:
    """A real process whose JSON log goes to a file (a pipe nobody drains would block a chatty gateway)."""

    def __init__(
        self,
        arguments: list[str],
        log_path: Path,
        env: dict[str, str],
        cwd: Path,
        preexec: Callable[[], None] | None = None,
    ) -> None:
        """``preexec`` runs in the child before the program starts (to set its resource limits, say)."""
        self.log_path = log_path
        self._log = log_path.open("a")
        self.process = subprocess.Popen(
            arguments, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=cwd, preexec_fn=preexec
        )

    def wait_for_log(self, message: str, timeout: float = 30, after: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.log_path.read_text().splitlines()[after:]
            for line in lines:
                if line.startswith("{") and json.loads(line).get("message") == message:
                    return json.loads(line)
            if self.process.poll() is not None:
                raise AssertionError(f"process ended before logging {message!r}:\n{self.log_path.read_text()}")
            time.sleep(0.05)
        raise AssertionError(f"no {message!r} within {timeout}s:\n{self.log_path.read_text()[-3000:]}")

    def log_lines(self) -> int:
        return len(self.log_path.read_text().splitlines())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    result = subprocess.run(
        [*MTSG, "commands", "keys", "generate", "--dir", str(tmp_path / "keys")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return tmp_path / "keys"


@pytest.fixture
def receiver(tmp_path: Path, keys: Path) -> Iterator[tuple[LoggedProcess, str]]:
    process = LoggedProcess(
        [
            *MTSG,
            "core-receiver",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(tmp_path / "receiver"),
            "--public-key-file",
            str(keys / "webhook-ed25519.pub"),
            "--hmac-secret-file",
            str(keys / "webhook-hmac.secret"),
            # Down for core banking's purposes until the test says otherwise.
            "--fail-status",
            "503",
            "--fail-count",
            "-1",
            "--test-controls",
        ],
        tmp_path / "receiver.log",
        dict(os.environ),
        tmp_path,
    )
    port = process.wait_for_log("receiver listening")["port"]
    yield process, f"http://127.0.0.1:{port}"
    process.process.send_signal(signal.SIGTERM)
    process.stop()


def gateway_env(keys: Path, endpoint: str) -> dict[str, str]:
    return {
        **os.environ,
        "MTSG_COMMANDS_ENDPOINT_URLS": endpoint,
        "MTSG_COMMANDS_ED25519_KEY_FILE": str(keys / "webhook-ed25519.key"),
        "MTSG_COMMANDS_BACKOFF_INITIAL_SECONDS": "0.05",
        "MTSG_COMMANDS_BACKOFF_MAX_SECONDS": "0.3",
        "MTSG_COMMANDS_MAX_ATTEMPTS": "1000",
        "MTSG_COMMANDS_REQUEST_TIMEOUT_SECONDS": "2",
        "MTSG_COMMANDS_LEASE_SECONDS": "3",
        "MTSG_COMMANDS_POLL_INTERVAL_SECONDS": "0.1",
    }


def applied_commands(receiver_url: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{receiver_url}/_applied", timeout=10).json()["applied"])


def wait_applied(receiver_url: str, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        applied = applied_commands(receiver_url)
        if len(applied) >= count:
            return applied
        time.sleep(0.1)
    raise AssertionError(f"{len(applied_commands(receiver_url))} of {count} commands applied within {timeout}s")
