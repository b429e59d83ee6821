"""`mtsg policy`, `mtsg verdicts` and SIGHUP against real processes and a real store."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gateway.client import MtsgClient
from gateway.generated.mtsg.v1 import common_pb2
from tests.helpers import CALL_STEPS_UP, SHIPPED, telemetry
from tests.integration.conftest import LoggedProcess, ServeProcess, run_mtsg, serve_command
from tests.tcp_proxy import FaultyProxy

CASES = Path(__file__).parent / "policy_cases"


def mtsg(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_mtsg(*arguments, cwd=cwd)


def test_validate_apply_versions_rollback_and_show(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "d")]
    good = tmp_path / "calls.toml"
    good.write_text(CALL_STEPS_UP)
    bad = tmp_path / "bad.toml"
    bad.write_text(CALL_STEPS_UP.replace('"otp"', '"carrier-pigeon"').replace("ACTIVE_CALL", "ACTIVE_CAL"))

    validated = mtsg("policy", "validate", str(good), cwd=tmp_path)
    assert validated.returncode == 0 and "valid; 1 scenario, 0 in shadow mode" in validated.stdout
    # Valid, but a login carrying only a HIGH finding such as impossible travel would be allowed.
    assert "warning: scenarios: IMPOSSIBLE_TRAVEL (HIGH) makes no active scenario act by itself" in validated.stderr
    shipped = mtsg("policy", "validate", str(SHIPPED), cwd=tmp_path)
    assert shipped.returncode == 0 and shipped.stderr == ""
    refused = mtsg("policy", "validate", str(bad), cwd=tmp_path)
    assert refused.returncode == 1
    assert "2 problems" in refused.stderr
    assert "scenarios[0].step_up_method: must be one of" in refused.stderr
    assert "scenarios[0].when.code: unknown finding code 'ACTIVE_CAL'" in refused.stderr

    wrong_place = mtsg("policy", "show", *data, cwd=tmp_path)
    assert wrong_place.returncode == 2 and "no mtsg store at" in wrong_place.stderr
    assert not (tmp_path / "d" / "mtsg.sqlite3").exists()  # reading made no empty store to answer from
    assert mtsg("migrate", *data, cwd=tmp_path).returncode == 0
    shown = mtsg("policy", "show", *data, cwd=tmp_path)
    assert shown.returncode == 2 and "no policy applied yet" in shown.stderr
    assert mtsg("policy", "apply", str(SHIPPED), "--comment", "start", *data, cwd=tmp_path).returncode == 0
    applied = mtsg("policy", "apply", str(good), "--comment", "calls", "--actor", "alice", *data, cwd=tmp_path)
    assert applied.returncode == 0 and "policy version 2 is in force" in applied.stdout
    assert "warning: scenarios: BANK_APP_TAMPERED (CRITICAL)" in applied.stderr
    same = mtsg("policy", "apply", str(good), "--comment", "again", *data, cwd=tmp_path)
    assert same.returncode == 0 and "policy version 2 already has this document" in same.stdout
    assert "no new version was made" in same.stdout
    failed = mtsg("policy", "apply", str(bad), *data, cwd=tmp_path)
    assert failed.returncode == 1 and "nothing was applied" in failed.stderr
    missing = mtsg("policy", "apply", str(tmp_path / "nope.toml"), *data, cwd=tmp_path)
    assert missing.returncode == 2 and "cannot read" in missing.stderr

    versions = mtsg("policy", "versions", *data, cwd=tmp_path).stdout.splitlines()
    assert [line[1:].split()[0] for line in versions] == ["2", "1"]
    assert versions[0].startswith("*") and "alice" in versions[0] and versions[0].endswith("calls")

    rolled = mtsg("policy", "rollback", "1", "--comment", "back", *data, cwd=tmp_path)
    assert rolled.returncode == 0 and "version 3 is in force: the document of version 1" in rolled.stdout
    assert mtsg("policy", "rollback", "42", *data, cwd=tmp_path).returncode == 2
    current = mtsg("policy", "show", *data, cwd=tmp_path).stdout
    assert current.startswith("# policy version 3") and SHIPPED.read_text() in current
    audit = mtsg("audit", "list", *data, cwd=tmp_path).stdout
    assert "policy.rollback" in audit and "policy.apply" in audit


def test_policy_test_runs_recorded_cases_and_fails_on_a_wrong_expectation(tmp_path: Path) -> None:
    passed = mtsg("policy", "test", str(SHIPPED), "--cases", str(CASES), "--data-dir", str(tmp_path), cwd=tmp_path)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "4 cases, 0 failed expectations" in passed.stdout
    assert "split-install-sms-stealer: STEP_UP by sideloaded-risky-app-since-last-login" in passed.stdout

    calls = tmp_path / "calls.toml"
    calls.write_text(CALL_STEPS_UP)
    failed = mtsg("policy", "test", str(calls), "--cases", str(CASES), "--data-dir", str(tmp_path), cwd=tmp_path)
    assert failed.returncode == 1
    assert "FAILED: expected FREEZE, got STEP_UP" in failed.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = mtsg("policy", "test", str(calls), "--cases", str(empty), cwd=tmp_path)
    assert nothing.returncode == 2 and "holds no *.json cases" in nothing.stderr
    (empty / "broken.json").write_text('{"login": {"telemetry": {"customer_id": ""}}}')
    broken = mtsg("policy", "test", str(calls), "--cases", str(empty), cwd=tmp_path)
    assert broken.returncode == 2 and "broken.json: the login would be refused" in broken.stderr


def test_sighup_applies_the_policy_file_and_keeps_the_running_one_when_it_is_bad(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(SHIPPED.read_text())
    process = subprocess.Popen(
        serve_command(str(tmp_path / "d")),
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "MTSG_SIGNALS_POLICY_FILE": str(policy_file)},
    )
    serve = ServeProcess(process, "", [])
    try:
        serve.target = f"127.0.0.1:{serve.read_log_until('serving')['port']}"

        async def verdict() -> tuple[int, str]:
            async with MtsgClient(serve.target, timeout=30) as client:
                answer = await client.check_login(telemetry(call={"active_call": True, "caller_in_contacts": True}))
            return answer.action, answer.policy_version

        assert asyncio.run(verdict()) == (common_pb2.ACTION_ALLOW, "1")  # the file equals the shipped policy

        policy_file.write_text(CALL_STEPS_UP)
        process.send_signal(signal.SIGHUP)
        serve.read_log_until("SIGHUP: policy file re-read")
        assert asyncio.run(verdict()) == (common_pb2.ACTION_STEP_UP, "2")

        policy_file.write_text("[[scenarios]]\nid = 'broken'\n")
        process.send_signal(signal.SIGHUP)
        refused = serve.read_log_until("SIGHUP: policy not reloaded; the running policy stays in force")
        assert "scenarios[0].description: is required" in str(refused["error"])
        assert asyncio.run(verdict()) == (common_pb2.ACTION_STEP_UP, "2")
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_sighup_while_the_gateway_starts_does_not_stop_it(
    tmp_path: Path, postgres_url: str, proxy: FaultyProxy, workers: int
) -> None:
    """A `systemctl reload` can come while the store migrates or a large registry loads, and SIGHUP's
    default action ends a process. The store answers nothing until the test lets it, so the first
    signal surely lands during the start (before a worker has read the policy file: nothing to do);
    the second comes as the start goes on, and must be done once the gateway serves.
    """
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(SHIPPED.read_text())
    proxy.stall()
    env = {
        **os.environ,
        "MTSG_STORE_URL": proxy.in_front_of(postgres_url),
        "MTSG_PRIVACY_PHONE_HASH_KEY_FILE": str(tmp_path / "phone-hash.key"),
        "MTSG_SIGNALS_POLICY_FILE": str(policy_file),
    }
    command = [*serve_command(tmp_path / "d"), "--workers", str(workers)]
    serve = LoggedProcess(command, tmp_path / "serve.log", env, tmp_path)
    try:
        deadline = time.monotonic() + 30
        while proxy.accepted == 0:  # the start is waiting on the store
            assert time.monotonic() < deadline and serve.process.poll() is None, serve.log_path.read_text()
            await asyncio.sleep(0.05)
        serve.process.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        assert serve.process.poll() is None, serve.log_path.read_text()
        proxy.restore()
        if workers > 1:  # the supervisor forks once the store is ready; workers may or may not serve yet
            await asyncio.to_thread(serve.wait_for_log, "worker started")
        serve.process.send_signal(signal.SIGHUP)
        await asyncio.to_thread(serve.wait_for_log, "serving")
        reread = await asyncio.to_thread(serve.wait_for_log, "SIGHUP: policy file re-read")
        assert (reread["version"], reread["changed"]) == ("1", False)
        assert _position(serve, "serving") < _position(serve, "SIGHUP: policy file re-read")
        assert serve.process.poll() is None
    finally:
        serve.stop()


def _position(process: LoggedProcess, message: str) -> int:
    """The line number of the first log line with ``message``."""
    lines = process.log_path.read_text().splitlines()
    return next(number for number, line in enumerate(lines) if f'"message": "{message}"' in line)


def test_a_bad_policy_file_stops_the_start_with_the_problems(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(CALL_STEPS_UP.replace("ACTIVE_CALL", "NO_SUCH_CODE"))
    result = subprocess.run(
        serve_command(str(tmp_path / "d")),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "MTSG_SIGNALS_POLICY_FILE": str(policy_file)},
        timeout=60,
    )
    assert result.returncode == 1
    assert "unknown finding code 'NO_SUCH_CODE'" in result.stderr


def test_verdicts_list_and_show_and_the_shadow_report(serve: ServeProcess, tmp_path: Path) -> None:
    customer = "cust-verdicts-1"

    async def logins() -> list[str]:
        async with MtsgClient(serve.target, timeout=30) as client:
            ids = [(await client.check_login(telemetry(customer_id=customer))).verdict_id for _ in range(2)]
            for _ in range(3):  # three customers on one device: the shadow shared-device scenario fires once
                await client.check_login(telemetry(device_id="shared-phone"))
            return ids

    ids = asyncio.run(logins())
    data = ["--data-dir", str(tmp_path / "d")]
    listed = mtsg("verdicts", "list", "--customer", customer, "--reasons", *data, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = [line for line in listed.stdout.splitlines() if not line.startswith("    ")]
    assert [line.split()[1] for line in lines] == list(reversed(ids))
    shown = mtsg("verdicts", "show", ids[0], *data, cwd=tmp_path)
    assert shown.returncode == 0 and f"customer {customer}" in shown.stdout and "ALLOW" in shown.stdout
    assert mtsg("verdicts", "show", "v_nope", *data, cwd=tmp_path).returncode == 2
    future = mtsg("verdicts", "list", "--customer", customer, "--since", "2999-01-01T00:00:00Z", *data, cwd=tmp_path)
    assert future.returncode == 0 and future.stdout == "" and "no verdicts" in future.stderr
    window = mtsg(
        "verdicts",
        "list",
        "--customer",
        customer,
        "--since",
        "2020-01-01",
        "--until",
        "2999-01-01",
        *data,
        cwd=tmp_path,
    )
    assert len(window.stdout.splitlines()) == 2
    for bad in (["--since", "yesterday"], ["--hours", "-1"], ["--since", "2026-01-02", "--until", "2026-01-01"]):
        refused = mtsg("verdicts", "list", "--customer", customer, *bad, *data, cwd=tmp_path)
        assert refused.returncode == 2, bad

    report = mtsg("policy", "shadow-report", "--hours", "1", *data, cwd=tmp_path)
    assert report.returncode == 0
    assert "shared-device: would STEP_UP 1 login of 1 customer; 1 would have changed the verdict" in report.stdout
    assert mtsg("policy", "shadow-report", "--hours", "0", *data, cwd=tmp_path).returncode == 2
