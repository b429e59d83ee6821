"""Starting the servers under test as real processes and reading their CPU and memory from /proc."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class ServerProcess:
    name: str
    process: subprocess.Popen[str]
    target: str

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server so far (Linux /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _drain(stream: IO[str]) -> None:
    for _ in stream:
        pass


def start_echo() -> ServerProcess:
    process = subprocess.Popen([sys.executable, "-m", "gateway.bench.echo"], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.strip().isdigit():
        process.kill()
        raise RuntimeError("the echo server did not start")
    return ServerProcess("echo", process, f"127.0.0.1:{int(line)}")


def _port_from_log(process: subprocess.Popen[str], message: str) -> int | None:
    """Read the JSON log on stderr up to ``message`` and return its port; then keep draining in a thread."""
    assert process.stderr is not None
    port: int | None = None
    for line in process.stderr:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("message") == message:
            port = int(entry["port"])
            break
    threading.Thread(target=_drain, args=(process.stderr,), daemon=True).start()
    return port


def start_receiver(data_dir: Path, hmac_secret_file: Path) -> ServerProcess:
    """``mtsg core-receiver`` on a free port, verifying with ``hmac_secret_file``."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "core-receiver",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(data_dir),
            "--hmac-secret-file",
            str(hmac_secret_file),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    port = _port_from_log(process, "receiver listening")
    if port is None:
        process.kill()
        raise RuntimeError("mtsg core-receiver did not start; run it by hand to see why")
    return ServerProcess("receiver", process, f"127.0.0.1:{port}")


def start_gateway(data_dir: Path, env: dict[str, str] | None = None) -> ServerProcess:
    """``mtsg serve`` on a free port (``env`` adds MTSG_* settings); its log is drained so the pipe never blocks it."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--insecure",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "",
            "--data-dir",
            str(data_dir),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    port = _port_from_log(process, "serving")
    if port is None:
        process.kill()
        raise RuntimeError("mtsg serve did not start; run it by hand to see why")
    return ServerProcess("gateway", process, f"127.0.0.1:{port}")
