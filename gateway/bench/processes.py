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


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name (which may hold spaces); field 0 is the state."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _process_tree(root: int) -> list[int]:
    """``root`` and every live process descending from it (``mtsg serve --workers``' workers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(_stat_fields(int(entry.name))[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
    tree = [root]
    for pid in tree:
        tree.extend(child for child, parent in parents.items() if parent == pid)
    return tree


def _cpu_seconds(pid: int) -> float:
    try:
        fields = _stat_fields(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _peak_rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class ServerProcess:
    name: str
    process: subprocess.Popen[str]
    target: str
    # Where the gateway's workers serve /metrics (empty: not read).
    metrics_ports: tuple[int, ...] = ()

    def cpu_seconds(self) -> float:
        """User + system CPU time so far of the server and its workers (Linux /proc)."""
        return sum(_cpu_seconds(pid) for pid in _process_tree(self.process.pid))

    def peak_rss_mb(self) -> float:
        """Peak resident memory of the server and its workers, added up."""
        return sum(_peak_rss_mb(pid) for pid in _process_tree(self.process.pid))

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


def _port_from_log(process: subprocess.Popen[str], message: str) -> tuple[int | None, tuple[int, ...]]:
    """Read the JSON log on stderr up to ``message``; its port and the metrics ports logged on the way.

    Then keep draining the log in a thread so the pipe never blocks the server.
    """
    assert process.stderr is not None
    port: int | None = None
    metrics_ports: list[int] = []
    for line in process.stderr:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("message") == "serving" and entry.get("metrics_port"):
            metrics_ports.append(int(entry["metrics_port"]))
        if entry.get("message") == message:
            port = int(entry["port"])
            break
    threading.Thread(target=_drain, args=(process.stderr,), daemon=True).start()
    return port, tuple(metrics_ports)


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
    port, _ = _port_from_log(process, "receiver listening")
    if port is None:
        process.kill()
        raise RuntimeError("mtsg core-receiver did not start; run it by hand to see why")
    return ServerProcess("receiver", process, f"127.0.0.1:{port}")


def start_gateway(data_dir: Path, env: dict[str, str] | None = None, workers: int = 1) -> ServerProcess:
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
            "127.0.0.1:0",
            "--data-dir",
            str(data_dir),
            "--workers",
            str(workers),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    port, metrics_ports = _port_from_log(process, "all workers serving" if workers > 1 else "serving")
    if port is None:
        process.kill()
        raise RuntimeError("mtsg serve did not start; run it by hand to see why")
    return ServerProcess("gateway", process, f"127.0.0.1:{port}", metrics_ports)
