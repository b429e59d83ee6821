"""Starting the servers under test as real processes and reading their CPU and memory from /proc."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def python_module(module: str) -> list[str]:
    """The command that runs ``module`` with the code this process runs, wherever it was started.

    ``python -m`` puts the working directory first on the import path, so a bench started in a
    directory holding another ``gateway`` (a checkout of another version) would measure that
    code, not its own.  ``-P`` (Python 3.11) leaves the working directory out: the servers
    import what this process imports, from the installed package or ``PYTHONPATH``.
    """
    return [sys.executable, "-P", "-m", module]


def tethered_module(module: str) -> list[str]:
    """``python_module(module)``, in a process that gets SIGTERM when this one dies, even by SIGKILL.

    ``module`` may also be the path of a script (``*.py``), run as ``python -P SCRIPT`` would.
    """
    return [*python_module("gateway.bench.tether"), str(os.getpid()), module]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the moment of asking."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name (which may hold spaces); field 0 is the state."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_tree(root: int) -> list[int]:
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


def peak_rss_mb(pid: int) -> float:
    """The peak resident memory of ``pid``'s current program (VmHWM), 0 once it is gone.

    Unlike ``getrusage``'s ``ru_maxrss``, it starts again at exec: a process spawned from a large
    parent does not carry the parent's peak.
    """
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
        return sum(_cpu_seconds(pid) for pid in process_tree(self.process.pid))

    def peak_rss_mb(self) -> float:
        """Peak resident memory of the server and its workers, added up."""
        return sum(peak_rss_mb(pid) for pid in process_tree(self.process.pid))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_echo() -> ServerProcess:
    process = subprocess.Popen(tethered_module("gateway.bench.echo"), stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.strip().isdigit():
        process.kill()
        raise RuntimeError("the echo server did not start")
    return ServerProcess("echo", process, f"127.0.0.1:{int(line)}")


def _port_from_log(
    process: subprocess.Popen[str], log: Path, message: str, timeout: float = 120.0
) -> tuple[int | None, tuple[int, ...]]:
    """Follow the JSON log the server writes to ``log`` up to ``message``: its port and the metrics ports logged.

    The log goes to a file, not a pipe: a pipe's reader here would wake at every log line the
    server writes, on the very cores the measurement shares, and a reader that fell behind
    would stall the server's writes.  None when the server exits or stays silent first.
    """
    port: int | None = None
    metrics_ports: list[int] = []
    deadline = time.monotonic() + timeout
    with log.open(encoding="utf-8", errors="replace") as lines:
        pending = ""
        while port is None and time.monotonic() < deadline:
            pending += lines.readline()
            if not pending.endswith("\n"):
                if process.poll() is not None:
                    break
                time.sleep(0.02)
                continue
            line, pending = pending, ""
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if entry.get("message") == "serving" and entry.get("metrics_port"):
                metrics_ports.append(int(entry["metrics_port"]))
            if entry.get("message") == message:
                port = int(entry["port"])
    return port, tuple(metrics_ports)


def _start(arguments: list[str], data_dir: Path, message: str, env: dict[str, str] | None = None) -> ServerProcess:
    """``mtsg ARGUMENTS`` with its log in ``data_dir``/server.log, once it logged ``message`` with its port."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "server.log"
    with log.open("w", encoding="utf-8") as stream:
        process = subprocess.Popen(
            [*tethered_module("gateway.cli"), *arguments],
            stderr=stream,
            text=True,
            env={**os.environ, **(env or {})},
        )
    port, metrics_ports = _port_from_log(process, log, message)
    if port is None:
        process.kill()
        process.wait()
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-5:])
        raise RuntimeError(f"mtsg {arguments[0]} did not start; its log ({log}) ends with:\n{tail}")
    return ServerProcess(arguments[0], process, f"127.0.0.1:{port}", metrics_ports)


def start_receiver(data_dir: Path, hmac_secret_file: Path) -> ServerProcess:
    """``mtsg core-receiver`` on a free port, verifying with ``hmac_secret_file``."""
    arguments = ["core-receiver", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir), "--test-controls"]
    return _start([*arguments, "--hmac-secret-file", str(hmac_secret_file)], data_dir, "receiver listening")


def start_gateway(data_dir: Path, env: dict[str, str] | None = None, workers: int = 1) -> ServerProcess:
    """``mtsg serve`` on a free port (``env`` adds MTSG_* settings) with ``workers`` processes."""
    arguments = ["serve", "--insecure", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"]
    arguments += ["--data-dir", str(data_dir), "--workers", str(workers)]
    return _start(arguments, data_dir, "all workers serving" if workers > 1 else "serving", env)
