"""mtsg bench runs end to end and reports figures for both servers (no timing is asserted here)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, start_http_server

from gateway.bench.processes import free_port, process_tree, start_echo, start_gateway
from gateway.bench.runner import replay_limits


@pytest.fixture(autouse=True)
def _bench_temporary_files_in_the_tests_own_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bench keeps its store in a temporary folder, which a bench killed outright cannot remove:
    made under the test's own folder, it goes with the test's files instead of staying in /tmp."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))


def test_quick_bench_reports_figures_for_echo_and_gateway(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "bench",
            "--quick",
            "--seconds",
            "1",
            "--warmup-seconds",
            "0.5",
            "--concurrency",
            "4",
            "--registry-entries",
            "3000",
            "--deliveries",
            "40",
            "--workers",
            "2",
            "--sweep",
            "0.25",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "gateway/echo throughput:" in result.stdout
    assert "[bench] gateway: warming up" in result.stderr  # progress is shown
    document = json.loads(out.read_text())
    figures = {row["server"]: row for row in document["figures"]}
    registry = document["registry"]
    assert registry["entries"] == 3000
    assert registry["import_seconds"] > 0 and registry["matcher_mb"] > 0
    assert 0 < registry["lookup_us_per_login_p50"] <= registry["lookup_us_per_login_p99"]
    assert 0 < registry["lookup_again_us_per_login_p50"] <= registry["lookup_again_us_per_login_p99"]
    assert "registry: 3,000 entries" in result.stdout
    assert set(figures) == {"echo", "gateway", "echo 1/2", "gateway 1/2", "echo 1/4", "gateway 1/4"}
    assert "gateway workers: 2" in result.stdout
    for name in ("echo", "gateway"):  # open loop at a half and a quarter of the rate the closed loop reached
        assert figures[f"{name} 1/4"]["requests"] < figures[f"{name} 1/2"]["requests"] < figures[name]["requests"]
        assert (figures[name]["offered_share"], figures[f"{name} 1/2"]["offered_share"]) == (None, 0.5)
        assert figures[f"{name} 1/4"]["offered_share"] == 0.25
    assert "latency against load (open loop at shares" in result.stdout and "p99 ms  inside < 10 ms\n" in result.stdout
    assert "\n  gateway: p99 < 10 ms " in result.stdout and "\n  echo: p99 < 10 ms " in result.stdout
    stages = {row["stage"]: row for row in figures["gateway"]["stages"]}
    assert {"validate", "history", "evaluate", "record"} <= set(stages)
    assert all(row["logins"] > 0 and row["mean_ms"] > 0 for row in stages.values())
    assert stages["validate"]["logins"] >= stages["record"]["logins"]
    assert "gateway stages under load" in result.stdout
    # Devices report their apps as phones do, each with its own times and grants, so the cache finds
    # only what a device sent before unchanged (its first round registered it): never all of them.
    assert 0.0 < figures["gateway"]["app_hit_share"] < 0.95 and figures["echo"]["app_hit_share"] is None
    assert "installed apps found already checked: " in result.stdout
    assert result.stdout.count("workload: ") == 1 and "first logins of a device" in result.stdout
    assert document["workload"]["logins"] > 0 and document["workload"]["first_logins"] > 0
    # Sent as an SDK using inventory digests: after the devices' first round, mostly the digest alone.
    workload = document["workload"]
    assert workload["by_digest"] and 0 < workload["sent_digest_only"] <= workload["sent"]
    assert "sent the digest alone" in result.stdout
    mix = figures["gateway"]["verdicts"]
    assert "ALLOW" in mix["by_action"] and set(mix["by_action"]) <= {"ALLOW", "STEP_UP", "FREEZE"}
    assert 0 < sum(mix["by_action"].values()) <= figures["gateway"]["requests"]  # phone changes get no verdict
    assert mix["freezes_held_back"] >= 0 and figures["echo"]["verdicts"] is None
    assert "\n  verdicts: ALLOW " in result.stdout
    # The gateway's own answer times (its rpc histogram): calls of the window, shares at 5 and 10 ms.
    inside = figures["gateway"]["inside"]
    assert 0 < inside["logins"] <= figures["gateway"]["requests"] and figures["echo"]["inside"] is None
    (five, under_five), (ten, under_ten) = inside["within"]
    assert (five, ten) == (5.0, 10.0) and 0 <= under_five <= under_ten <= 1
    assert "\n  CheckLogin inside the gateway (its interceptor's start to the answer): " in result.stdout
    assert figures["gateway 1/2"]["inside"]["logins"] > 0
    assert "% under 10 ms; gateway p99 < 10 ms " in result.stdout  # in the half-rate verdict, before the sweep
    half_stages = {row["stage"]: row for row in figures["gateway 1/2"]["stages"]}
    assert half_stages["record"]["logins"] > 0 and "at 1/2: logins" in result.stdout
    delivery = document["delivery"]
    assert delivery["commands"] == delivery["delivered"] == 40
    assert 0 < delivery["p50_ms"] <= delivery["p99_ms"] <= delivery["max_ms"]
    assert 0 < delivery["direct_p50_ms"] <= delivery["direct_p99_ms"]
    assert "verdict -> delivery (40/40 FREEZE commands" in result.stdout
    # Again with the half-rate login load beside the pushes: only the pushes' own commands are counted.
    under_load, beside = delivery["under_load"], delivery["beside"]
    assert under_load["commands"] == under_load["delivered"] == 40
    assert 0 < under_load["p50_ms"] <= under_load["p99_ms"] <= under_load["max_ms"]
    assert beside["rate_per_second"] == figures["gateway 1/2"]["throughput_per_second"]
    assert beside["answered"] > 0 and beside["errors"] == {} and beside["p99_ms"] > 0
    assert "40/40 delivered; beside them" in result.stdout
    evaluation = document["evaluation"]
    assert evaluation["logins"] == 150 and 150 <= evaluation["apps_per_login_mean"] <= 300
    for stage in ("decode", "validate", "validate_kept", "detectors", "policy"):
        p50, p99 = evaluation["stages_us"][stage]
        assert 0 < p50 <= p99
    assert "brain, CPU per login (150 logins" in result.stdout
    assert "against the targets:" in result.stdout
    targets = {row["target"]: row for row in document["targets"]}
    assert len(targets) == 4
    half_rate = targets["p99 at half the max rate < 10 ms"]
    assert half_rate["measured"] == f"{figures['gateway 1/2']['p99_ms']:.2f} ms"
    assert half_rate["met"] == (figures["gateway 1/2"]["p99_ms"] < 10)
    assert targets["evaluation CPU per login < 0.2 ms"]["note"] == "with the 3,000-entry registry"
    assert targets["gateway/echo throughput >= 75%"]["note"].startswith("75% of echo is ")
    for row in figures.values():
        assert row["requests"] > 0
        assert row["errors"] == {}
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["p999_ms"]
        assert row["cpu_ms_per_request"] > 0
        assert row["peak_rss_mb"] > 10


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["--clients", "0"], "must be positive"),
        # nan and inf reached the run and failed there with a traceback.
        (["--seconds", "nan"], "argument --seconds: expected a number of seconds from 0 to 86400, got 'nan'"),
        (["--seconds", "inf"], "argument --seconds: expected a number of seconds from 0 to 86400"),
        (["--warmup-seconds", "-1"], "argument --warmup-seconds: expected a number of seconds from 0 to 86400"),
        (["--rate", "nan"], "argument --rate: expected a number above 0, got 'nan'"),
        (["--sweep", "0.25,half"], "--sweep: 'half' is not a number"),
        (["--sweep", "0.25,2"], "--sweep: 2 is not a share of the closed-loop rate"),
        (["--sweep", "--rate", "100"], "--sweep measures shares of a closed loop's rate; it cannot run with --rate"),
        (["--target-metrics", "127.0.0.1:9464"], "--target-metrics reads the gateway given by --target"),
        (
            ["--target", "127.0.0.1:1", "--target-metrics", f"127.0.0.1:{free_port()}"],
            "--target-metrics: cannot read http://127.0.0.1:",
        ),
    ],
)
def test_bench_refuses_nonsense_settings(arguments: list[str], complaint: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "bench", *arguments], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and complaint in result.stderr
    assert "[bench]" not in result.stderr  # refused before anything was started


def test_bench_against_a_gateway_that_answers_nothing_fails_instead_of_reporting_a_ratio() -> None:
    """Refused calls end in microseconds; they once showed up as 'gateway/echo throughput: 868%'."""
    target = f"127.0.0.1:{free_port()}"  # nothing listens there
    result = subprocess.run(
        [
            *(sys.executable, "-m", "gateway.cli", "bench", "--quick", "--target", target, "--seconds", "1"),
            *("--warmup-seconds", "0.2", "--concurrency", "2", "--deliveries", "0"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "gateway/echo throughput: not measured" in result.stdout
    assert "UNAVAILABLE" in result.stdout
    assert f"no call was answered in the run gateway; is {target} serving" in result.stderr
    assert "gateway 1/2" not in result.stdout  # no half-rate run derived from failures
    assert "gateway/echo throughput >= 75%" in result.stdout and "not measured" in result.stdout


def test_a_gateway_that_cannot_start_is_reported_with_the_end_of_its_log(tmp_path: Path) -> None:
    """The bench's servers log to a file in their data directory; when one fails, its last lines say why."""
    with pytest.raises(RuntimeError) as failure:
        start_gateway(tmp_path / "gateway", {"MTSG_STORE_URL": "bogus://nowhere"})
    message = str(failure.value)
    assert message.startswith(f"mtsg serve did not start; its log ({tmp_path / 'gateway' / 'server.log'}) ends with:")
    assert "store.url: expected sqlite:///PATH" in message


def test_the_servers_run_the_bench_s_own_code_wherever_it_is_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started in a directory that holds another ``gateway`` package, the bench still starts its own servers."""
    decoy = tmp_path / "gateway" / "bench"
    decoy.mkdir(parents=True)
    (tmp_path / "gateway" / "__init__.py").write_text("")
    (decoy / "__init__.py").write_text("")
    (decoy / "echo.py").write_text("print('not the echo server', flush=True)\n")
    monkeypatch.chdir(tmp_path)
    echo = start_echo()  # with the decoy imported, it prints no port and this raises
    try:
        assert echo.process.poll() is None
        assert echo.target.startswith("127.0.0.1:") and int(echo.target.rpartition(":")[2]) > 0
    finally:
        echo.stop()


def test_metrics_that_are_not_a_gateways_are_refused_before_the_run() -> None:
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=CollectorRegistry())
    try:
        arguments = ("bench", "--quick", "--target", "127.0.0.1:1", "--target-metrics", f"127.0.0.1:{port}")
        result = subprocess.run(
            [sys.executable, "-m", "gateway.cli", *arguments], capture_output=True, text=True, timeout=60
        )
    finally:
        server.shutdown()
        thread.join(timeout=5)
    assert result.returncode == 2
    assert "has no mtsg_login_stage_seconds: not the /metrics of an mtsg gateway" in result.stderr
    assert "[bench]" not in result.stderr


def test_a_target_gateway_is_read_through_its_metrics(tmp_path: Path) -> None:
    gateway = start_gateway(tmp_path / "gateway", replay_limits())
    out = tmp_path / "figures.json"
    try:
        (metrics_port,) = gateway.metrics_ports
        arguments = ["bench", "--quick", "--seconds", "1", "--warmup-seconds", "0.5", "--concurrency", "4"]
        arguments += ["--deliveries", "0", "--target", gateway.target, "--json", str(out)]
        arguments += ["--target-metrics", f"127.0.0.1:{metrics_port}"]
        result = subprocess.run(
            [sys.executable, "-m", "gateway.cli", *arguments], capture_output=True, text=True, timeout=300
        )
    finally:
        gateway.stop()
    assert result.returncode == 0, result.stderr
    figures = {row["server"]: row for row in json.loads(out.read_text())["figures"]}
    for name in ("gateway", "gateway 1/2"):
        assert {row["stage"] for row in figures[name]["stages"]} >= {"validate", "history", "evaluate", "record"}
        # The gateway counts a login sent again with its list (it did not hold the digest) twice, and
        # answers calls in flight across the window's edges that the clients leave out (a slow run has
        # many); the whole run's logins would be several times more.
        calls = figures[name]["requests"] + figures[name]["workload"]["sent_again"]
        assert 0 < figures[name]["inside"]["logins"] <= 1.5 * calls + 4
        assert figures[name]["cpu_ms_per_request"] is None  # another process's CPU is not this bench's to read
    assert figures["echo"]["stages"] == [] and figures["echo"]["inside"] is None
    assert "gateway stages under load" in result.stdout and "CheckLogin inside the gateway" in result.stdout


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for whoever inherited it to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.parametrize("server", ["gateway.bench.echo", "gateway.cli serve"])
def test_a_bench_killed_outright_takes_its_servers_and_clients_with_it(tmp_path: Path, server: str) -> None:
    """SIGKILL runs no clean-up in the bench: its servers and client processes end all the same."""
    log = (tmp_path / "bench.log").open("w")
    arguments = ("bench", "--quick", "--seconds", "4", "--warmup-seconds", "0", "--concurrency", "4")
    bench = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", *arguments, "--deliveries", "0"], stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            descendants = [pid for pid in process_tree(bench.pid) if pid != bench.pid]
            servers = [pid for pid in descendants if server in _command_line(pid)]
            if servers and len(descendants) >= 3:  # the server and the two client processes driving it
                break
            assert bench.poll() is None and time.monotonic() < deadline, (tmp_path / "bench.log").read_text()
            time.sleep(0.2)
        time.sleep(1.0)  # the load is running
    finally:
        bench.kill()
        bench.wait()
        log.close()
    deadline = time.monotonic() + 30
    while any(_running(pid) for pid in descendants) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = {pid: _command_line(pid) for pid in descendants if _running(pid)}
    for pid in left:
        os.kill(pid, signal.SIGKILL)  # leave nothing behind for the next test, then fail
    assert not left, f"still running after the bench was killed: {left}"
    # What the killed bench could not remove is in the test's folder, not left in the system's /tmp.
    assert list(tmp_path.glob("mtsg-bench-*")), "the bench made no temporary folder where TMPDIR says"


def test_a_tethered_script_ends_with_the_process_that_started_it(tmp_path: Path) -> None:
    """scripts/bench_ladder.py serves its levels from a script path; the tether takes a path as well as a module."""
    script = tmp_path / "serve_forever.py"
    script.write_text("import sys, time\nprint(sys.argv[1:], flush=True)\ntime.sleep(600)\n")
    parent_code = (
        "import subprocess, sys, time\n"
        "from gateway.bench.processes import tethered_module\n"
        f"command = [*tethered_module({str(script)!r}), '--level', 'x']\n"
        "child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)\n"
        "print(child.pid, child.stdout.readline().strip(), flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child_pid, _, arguments = parent.stdout.readline().strip().partition(" ")
        assert arguments == "['--level', 'x']"  # the script ran, with its own arguments
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 30
    while _running(int(child_pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _running(int(child_pid)):
        os.kill(int(child_pid), signal.SIGKILL)
        raise AssertionError("the tethered script outlived the process that started it")
