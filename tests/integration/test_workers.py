"""`mtsg serve --workers N`: several real gateway processes on one port and one SQLite store.

The kernel spreads connections over the workers (SO_REUSEPORT); every worker must see what
another wrote (a phone change recorded by one decides a login answered by another), nothing
may be written twice or lost, a worker that dies is replaced, and SIGTERM stops them all.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from gateway.generated.mtsg.v1 import (
    common_pb2,
    event_service_pb2,
    event_service_pb2_grpc,
    threat_signal_service_pb2_grpc,
)
from gateway.server.workers import port_claim_name, reserved_port
from tests.helpers import CALL_STEPS_UP, SHIPPED, app, freezing_login, phone_change, request, telemetry
from tests.integration.conftest import MTSG, LoggedProcess, run_mtsg

CONNECTIONS = 16  # all 16 landing on one of two workers: 1 in 32,768


def _free_port_pair() -> int:
    """A port P with P+1 free too: the two workers' metrics ports."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two adjacent free ports")


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[LoggedProcess, str, int]]:
    metrics_port = _free_port_pair()
    (tmp_path / "policy.toml").write_text(SHIPPED.read_text())  # the same document: version 1 stays
    process = LoggedProcess(
        [
            *MTSG,
            "serve",
            "--insecure",
            "--workers",
            "2",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            f"127.0.0.1:{metrics_port}",
            "--data-dir",
            str(tmp_path / "d"),
        ],
        tmp_path / "serve.log",
        env={
            **os.environ,
            "MTSG_SERVER_SHUTDOWN_DRAIN_SECONDS": "0.5",
            "MTSG_SIGNALS_POLICY_FILE": str(tmp_path / "policy.toml"),
        },
        cwd=tmp_path,
    )
    try:
        serving = process.wait_for_log("all workers serving", timeout=60)
        yield process, f"127.0.0.1:{serving['port']}", metrics_port
    finally:
        process.stop()


def _channels(target: str) -> list[grpc.Channel]:
    # Channels with the same target share one connection unless each keeps its own subchannels.
    return [grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(CONNECTIONS)]


def _verdicts_counted(metrics_port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("mtsg_verdicts_total{"))


def _rows(database: Path, sql: str) -> int:
    with sqlite3.connect(database) as connection:
        return int(connection.execute(sql).fetchone()[0])


def test_workers_share_the_port_and_the_store(workers: tuple[LoggedProcess, str, int], tmp_path: Path) -> None:
    process, target, metrics_port = workers
    channels = _channels(target)
    try:
        customer = "cust-shared-story"
        events = event_service_pb2_grpc.EventServiceStub(channels[0])
        events.ReportPhoneNumberChange(
            event_service_pb2.ReportPhoneNumberChangeRequest(changes=[phone_change(customer)]), timeout=10
        )
        answers = []
        for index, channel in enumerate(channels):
            stub = threat_signal_service_pb2_grpc.ThreatSignalServiceStub(channel)
            # After the number change, a login from a remote-control app on a new device: on every worker.
            risky = telemetry(
                customer_id=customer,
                installed_apps=[app("com.teamviewer.quicksupport.market", label="QS", running=True)],
            )
            answers.append(stub.CheckLogin(request(risky, f"risky-{index}"), timeout=10))
            answers.append(stub.CheckLogin(request(freezing_login(), f"freeze-{index}"), timeout=10))
            answers.append(stub.CheckLogin(request(telemetry(), f"clean-{index}"), timeout=10))
    finally:
        for channel in channels:
            channel.close()

    risky_actions = {answer.action for answer in answers[0::3]}
    assert common_pb2.ACTION_ALLOW not in risky_actions  # every worker saw the change the first one stored
    assert all(answer.action == common_pb2.ACTION_FREEZE for answer in answers[1::3])
    assert all(answer.action == common_pb2.ACTION_ALLOW for answer in answers[2::3])

    per_worker = [_verdicts_counted(metrics_port), _verdicts_counted(metrics_port + 1)]
    assert sum(per_worker) == 3 * CONNECTIONS
    assert min(per_worker) > 0, f"the kernel gave every connection to one worker: {per_worker}"

    database = tmp_path / "d" / "mtsg.sqlite3"
    assert _rows(database, "SELECT COUNT(*) FROM verdicts") == 3 * CONNECTIONS
    assert _rows(database, "SELECT COUNT(DISTINCT verdict_id) FROM verdicts") == 3 * CONNECTIONS
    freezes = _rows(database, "SELECT COUNT(*) FROM verdicts WHERE action = 'ACTION_FREEZE'")
    assert freezes >= CONNECTIONS
    assert _rows(database, "SELECT COUNT(*) FROM commands") >= freezes

    process.process.send_signal(signal.SIGTERM)
    assert process.process.wait(timeout=30) == 0
    process.wait_for_log("all workers stopped")
    with socket.socket() as probe:  # the port is free again
        probe.bind(("127.0.0.1", int(target.rsplit(":", 1)[1])))


def test_a_dead_worker_is_replaced(workers: tuple[LoggedProcess, str, int]) -> None:
    process, target, metrics_port = workers
    started = process.wait_for_log("worker started")
    lines_before = process.log_lines()
    os.kill(int(started["pid"]), signal.SIGKILL)
    died = process.wait_for_log("worker died; starting a new one", after=lines_before)
    assert died["worker"] == started["worker"]
    process.wait_for_log("serving", after=lines_before, timeout=60)

    deadline = time.monotonic() + 30
    while True:  # the new worker serves its metrics on the same port as the one it replaces
        try:
            _verdicts_counted(metrics_port + int(started["worker"]))
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "the replacement worker never served metrics"
            time.sleep(0.2)
    channels = _channels(target)
    try:
        for channel in channels:
            stub = threat_signal_service_pb2_grpc.ThreatSignalServiceStub(channel)
            assert stub.CheckLogin(request(telemetry()), timeout=10).action == common_pb2.ACTION_ALLOW
    finally:
        for channel in channels:
            channel.close()


def test_sighup_to_the_supervisor_brings_a_changed_policy_file_to_every_worker(
    workers: tuple[LoggedProcess, str, int], tmp_path: Path
) -> None:
    """`systemctl reload` signals the supervisor alone; before, its default action stopped the gateway."""
    process, target, _ = workers
    (tmp_path / "policy.toml").write_text(CALL_STEPS_UP)
    lines_before = process.log_lines()
    process.process.send_signal(signal.SIGHUP)
    passed_on = process.wait_for_log("SIGHUP passed on", after=lines_before)
    reread = process.wait_for_log("SIGHUP: policy file re-read", after=lines_before)
    assert (reread["worker"], reread["changed"], reread["version"]) == (passed_on["worker"], True, "2")
    deadline = time.monotonic() + 30
    while len(_workers_with_policy(process, "2", lines_before)) < 2:  # the other one, from the store
        assert time.monotonic() < deadline, process.log_path.read_text()[-3000:]
        time.sleep(0.1)

    channels = _channels(target)
    try:
        call = {"active_call": True, "caller_in_contacts": True}
        answers = [
            threat_signal_service_pb2_grpc.ThreatSignalServiceStub(channel).CheckLogin(
                request(telemetry(call=call)), timeout=10
            )
            for channel in channels
        ]
    finally:
        for channel in channels:
            channel.close()
    assert {(answer.action, answer.policy_version) for answer in answers} == {(common_pb2.ACTION_STEP_UP, "2")}
    assert process.process.poll() is None
    assert _rows(tmp_path / "d" / "mtsg.sqlite3", "SELECT COUNT(*) FROM policy_versions") == 2


def _workers_with_policy(process: LoggedProcess, version: str, after: int) -> set[int]:
    entries = map(json.loads, process.log_path.read_text().splitlines()[after:])
    return {
        entry["worker"]
        for entry in entries
        if entry.get("message") == "policy in force" and str(entry.get("version")) == version
    }


def _two_workers_on(port: int, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`mtsg serve --workers 2` on 127.0.0.1:``port``, run to its end (these tests expect it refused)."""
    return run_mtsg(
        "serve",
        "--insecure",
        "--workers",
        "2",
        "--listen",
        f"127.0.0.1:{port}",
        "--metrics-listen",
        "",
        "--data-dir",
        str(tmp_path / "d"),
        cwd=tmp_path,
    )


def test_bad_worker_counts_and_taken_ports_are_refused(tmp_path: Path) -> None:
    result = run_mtsg("serve", "--insecure", "--workers", "0", "--data-dir", str(tmp_path / "d"), cwd=tmp_path)
    assert result.returncode == 2
    assert "server.workers: must be positive" in result.stderr

    result = run_mtsg("serve", "--insecure", "--workers", "two", "--data-dir", str(tmp_path / "d"), cwd=tmp_path)
    assert result.returncode == 2 and "invalid int value" in result.stderr

    with socket.socket() as taken:  # held without SO_REUSEPORT: the workers must not share it
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _two_workers_on(port, tmp_path)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


@contextlib.contextmanager
def _held_port_after_a_free_one() -> Iterator[socket.socket]:
    """A listening socket on a port whose lower neighbour is free: the kernel hands out ports in
    no order, so the neighbour of the first one it gives may belong to another test."""
    for _ in range(50):
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", taken.getsockname()[1] - 1))
            except OSError:
                taken.close()
                continue
        taken.listen()
        with taken:
            yield taken
        return
    raise AssertionError("no port with a free lower neighbour in 50 tries")


def test_a_taken_metrics_port_of_any_worker_is_refused_before_the_store_is_made(tmp_path: Path) -> None:
    """Worker i serves /metrics on the base port + i: the second worker's port held by another program
    stopped the start only once the supervisor had made a store and a key ring."""
    with _held_port_after_a_free_one() as taken:
        second = taken.getsockname()[1]
        result = run_mtsg(
            *("serve", "--insecure", "--workers", "2", "--listen", "127.0.0.1:0"),
            *("--metrics-listen", f"127.0.0.1:{second - 1}", "--data-dir", str(tmp_path / "d")),
            cwd=tmp_path,
        )
    assert result.returncode == 1, result.stderr
    assert f"cannot serve metrics on 127.0.0.1:{second}: Address already in use" in result.stderr
    assert not (tmp_path / "d").exists()


def test_a_second_gateway_on_the_workers_port_is_refused(
    workers: tuple[LoggedProcess, str, int], tmp_path: Path
) -> None:
    """Before, a second `mtsg serve --workers` on the same port (another data dir, a leftover of a
    botched deploy) started without a word, and the kernel spread logins over both installations."""
    process, target, _ = workers
    for extra in (["--workers", "2"], []):
        other = tmp_path / f"other{len(extra)}"
        second = run_mtsg(
            "serve",
            "--insecure",
            *extra,
            "--listen",
            target,
            "--metrics-listen",
            "",
            "--data-dir",
            str(other),
            cwd=tmp_path,
        )
        assert second.returncode == 1, second.stderr
        assert f"cannot listen on {target}" in second.stderr
    assert not (tmp_path / "other2").exists()  # the supervisor looks at the port before it makes a store
    assert process.process.poll() is None  # the first one serves on
    with grpc.insecure_channel(target) as channel:
        stub = threat_signal_service_pb2_grpc.ThreatSignalServiceStub(channel)
        assert stub.CheckLogin(request(telemetry()), timeout=10).action == common_pb2.ACTION_ALLOW


def test_a_supervisor_starting_at_the_same_instant_is_refused(tmp_path: Path) -> None:
    """Two supervisors started in the same instant could both pass the lone bind (between it and
    the sharing bind the port is free) and then share the port.  The claim a supervisor holds from
    before its first bind closes that window: here it is held, as by a supervisor in that window."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as claim:
        claim.bind(port_claim_name("127.0.0.1", port))
        result = _two_workers_on(port, tmp_path)
    assert result.returncode == 1, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}: another mtsg serve --workers holds it" in result.stderr


def test_the_claim_is_held_while_the_port_is_reserved_and_freed_after() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (
        reserved_port(f"127.0.0.1:{port}"),
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as second,
        pytest.raises(OSError),
    ):
        second.bind(port_claim_name("127.0.0.1", port))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as after:
        after.bind(port_claim_name("127.0.0.1", port))


def test_workers_stop_when_the_supervisor_is_killed(workers: tuple[LoggedProcess, str, int]) -> None:
    """SIGKILL leaves the supervisor no chance to stop them: the kernel tells each worker instead."""
    process, _, _ = workers
    pids = [
        int(entry["pid"])
        for entry in map(json.loads, process.log_path.read_text().splitlines())
        if entry.get("message") == "worker started"
    ]
    assert len(pids) == 2
    process.process.kill()
    process.process.wait(timeout=10)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in pids):
        assert time.monotonic() < deadline, "workers outlived their supervisor"
        time.sleep(0.1)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"
