"""The real ``mtsg`` processes: serve, check on the shipped examples, graceful SIGTERM, config show."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import signal
import socket
import subprocess
from importlib import metadata
from pathlib import Path

import httpx
import pytest

from gateway.client import MtsgClient
from gateway.generated.mtsg.v1 import common_pb2
from tests.helpers import SHIPPED, app, telemetry
from tests.integration.conftest import MTSG, ServeProcess, run_mtsg, serve_command


def _check(target: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MTSG, "check", "--target", target, *arguments], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("example", "action", "reason_codes", "method"),
    [
        ("clean-login", "ACTION_ALLOW", set(), ""),
        (
            "remote-control-during-call",
            "ACTION_FREEZE",
            {"REMOTE_CONTROL_APP_ACTIVE", "ACTIVE_CALL"},
            "",
        ),
        (
            "phone-changed-new-device",
            "ACTION_STEP_UP",
            {"PHONE_NUMBER_CHANGED_RECENTLY", "NEW_DEVICE"},
            "STEP_UP_METHOD_CALLBACK_PREVIOUS_NUMBER",
        ),
    ],
)
def test_shipped_examples_give_the_documented_verdicts(
    serve: ServeProcess, example: str, action: str, reason_codes: set[str], method: str
) -> None:
    for _ in range(2):  # the examples are repeatable
        result = _check(serve.target, "--example", example, "--json")
        assert result.returncode == 0, result.stderr
        verdict = json.loads(result.stdout)
        assert verdict["action"] == action
        assert verdict["verdict_id"].startswith("v_")
        assert reason_codes <= {reason["code"] for reason in verdict["reasons"]}
        if method:
            assert verdict["step_up_method"] == method


def test_readable_output_names_action_reasons_and_scenario(serve: ServeProcess) -> None:
    result = _check(serve.target, "--example", "remote-control-during-call")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("FREEZE")
    assert "TeamViewer QuickSupport" in result.stdout
    assert "phone call" in result.stdout
    assert "remote-control-during-call" in result.stdout


def test_check_reports_bad_files_and_server_errors_clearly(serve: ServeProcess, tmp_path: Path) -> None:
    missing = _check(serve.target, str(tmp_path / "none.json"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"telemetry": {"customer_id": 5, "no_such_field": 1}}')
    wrong = _check(serve.target, str(garbage))
    assert wrong.returncode == 2 and "does not match the mtsg.v1 contract" in wrong.stderr
    truncated = tmp_path / "truncated.json"
    truncated.write_text('{"telemetry": {"customer_id": "c1", "device_')
    cut = _check(serve.target, str(truncated))
    assert cut.returncode == 2 and "not valid JSON" in cut.stderr
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    nested = _check(serve.target, str(deep))
    assert nested.returncode == 2 and "nested too deeply" in nested.stderr and "Traceback" not in nested.stderr
    invalid = tmp_path / "invalid.json"
    invalid.write_text('{"telemetry": {"customer_id": "c1", "device_id": "", "location": {"latitude": 123}}}')
    refused = _check(serve.target, str(invalid))
    assert refused.returncode == 1
    assert "mtsg check: INVALID_ARGUMENT: the gateway refused the request, 2 problems:\n" in refused.stderr
    assert refused.stderr.count("telemetry.device_id: is required") == 1  # once, not in the header too
    assert "telemetry.device_id: is required" in refused.stderr
    assert "telemetry.location.latitude" in refused.stderr
    assert re.search(r"request id: [0-9a-f]{32} \(quote it", refused.stderr)  # the id the gateway logged it under


def test_check_against_no_server_says_so() -> None:
    result = _check("127.0.0.1:1", "--example", "clean-login", "--timeout", "2")
    assert result.returncode == 1
    assert "cannot reach the gateway at 127.0.0.1:1" in result.stderr


def test_sigterm_finishes_calls_in_flight_then_exits(serve: ServeProcess) -> None:
    async def many_logins() -> list[int]:
        async with MtsgClient(serve.target, timeout=60) as client:
            calls = [
                asyncio.ensure_future(
                    client.check_login(telemetry(installed_apps=[app(f"com.example.a{i}") for i in range(2000)]))
                )
                for _ in range(20)
            ]
            await asyncio.sleep(0.3)  # the calls are on the server now
            serve.process.send_signal(signal.SIGTERM)
            return [(await call).action for call in calls]

    actions = asyncio.run(many_logins())
    assert actions == [common_pb2.ACTION_ALLOW] * 20
    assert serve.process.wait(timeout=30) == 0
    serve.read_log_until("stopped")
    messages = [entry["message"] for entry in serve.log]
    assert messages.index("shutting down") < messages.index("stopped")


def test_config_show_prints_the_effective_config_with_sources(tmp_path: Path) -> None:
    config = tmp_path / "mtsg.toml"
    config.write_text("[limits]\nmax_installed_apps = 900\n")
    result = subprocess.run(
        [*MTSG, "config", "show", "--config", str(config), "--listen", "0.0.0.0:6000"],
        capture_output=True,
        text=True,
        env={**os.environ, "MTSG_LOGGING_LEVEL": "debug"},
    )
    assert result.returncode == 0, result.stderr
    assert 'listen = "0.0.0.0:6000"  # flag --listen' in result.stdout
    assert f"max_installed_apps = 900  # file {config}" in result.stdout
    assert 'level = "debug"  # env MTSG_LOGGING_LEVEL' in result.stdout
    bad = subprocess.run([*MTSG, "config", "show", "--listen", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "server.listen" in bad.stderr


def test_only_serve_and_config_show_take_the_ports_a_gateway_serves_on() -> None:
    """Every store command offered --listen and --metrics-listen, where they meant nothing."""
    for command in (["serve"], ["config", "show"]):
        shown = subprocess.run([*MTSG, *command, "--help"], capture_output=True, text=True, timeout=60).stdout
        assert "--listen" in shown and "--metrics-listen" in shown and "--data-dir" in shown, command
    for command in (["purge"], ["verdicts", "list"], ["blocklist", "list"], ["store", "copy"], ["migrate"]):
        shown = subprocess.run([*MTSG, *command, "--help"], capture_output=True, text=True, timeout=60).stdout
        assert "--data-dir" in shown and "--config" in shown, command
        assert "--listen" not in shown and "--metrics-listen" not in shown, command


@pytest.mark.parametrize("purpose", ["listen on", "serve metrics on", "serve health on"])
def test_serve_refuses_a_port_in_use_before_it_makes_anything(
    serve: ServeProcess, tmp_path: Path, purpose: str
) -> None:
    """Refused for a taken port, a start made a database and a key ring in its data dir first (or, with a
    newer build on the data dir of the gateway serving there, migrated that gateway's store)."""
    with socket.socket() as other_program:
        other_program.bind(("127.0.0.1", 0))
        other_program.listen()
        taken = {
            "listen on": serve.target,
            "serve metrics on": f"127.0.0.1:{serve.log[-1]['metrics_port']}",
            "serve health on": f"127.0.0.1:{other_program.getsockname()[1]}",
        }
        ports = {name: address if name == purpose else "127.0.0.1:0" for name, address in taken.items()}
        other = tmp_path / "other"
        flags = [
            "--data-dir",
            str(other),
            "--listen",
            ports["listen on"],
            "--metrics-listen",
            ports["serve metrics on"],
        ]
        result = subprocess.run(
            [*MTSG, "serve", "--insecure", *flags],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "MTSG_SERVER_HEALTH_LISTEN": ports["serve health on"]},
        )
    assert result.returncode == 1, result.stderr
    assert f"mtsg serve: cannot {purpose} {taken[purpose]}: Address already in use" in result.stderr
    assert not other.exists()
    assert serve.process.poll() is None  # the gateway there serves on


@pytest.mark.parametrize(
    ("listen", "reason"),
    [
        ("nosuchhost.invalid:50077", "Name or service not known"),  # a name that resolves to nothing
        ("192.0.2.1:50077", "Cannot assign requested address"),  # no interface of this machine has it
    ],
)
def test_serve_refuses_an_address_it_cannot_bind_and_names_it(tmp_path: Path, listen: str, reason: str) -> None:
    result = run_mtsg("serve", "--insecure", "--listen", listen, "--data-dir", str(tmp_path / "d"), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr.endswith(f"mtsg serve: cannot listen on {listen}: {reason}\n")  # no misleading hint
    assert not (tmp_path / "d").exists()


def test_version_is_told_by_the_command_and_by_the_serving_gateway(serve: ServeProcess) -> None:
    """During a rolling upgrade an operator asks each host and each replica which build it runs."""
    version = metadata.version("mtsg")
    result = subprocess.run([*MTSG, "--version"], capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout) == (0, f"mtsg {version} (Python {platform.python_version()})\n")
    assert serve.log[-1]["message"] == "serving" and serve.log[-1]["version"] == version


def test_health_command_reports_serving_and_fails_without_a_server(serve: ServeProcess) -> None:
    up = subprocess.run([*MTSG, "health", "--target", serve.target], capture_output=True, text=True, timeout=30)
    assert (up.returncode, up.stdout.strip()) == (0, "SERVING")
    service = subprocess.run(
        [*MTSG, "health", "--target", serve.target, "--service", "mtsg.v1.NoSuchService"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert service.returncode == 1 and "NOT_FOUND" in service.stderr
    down = subprocess.run(
        [*MTSG, "health", "--target", "127.0.0.1:1", "--timeout", "2"], capture_output=True, text=True
    )
    assert down.returncode == 1 and "UNAVAILABLE" in down.stderr


def test_check_and_health_find_the_gateway_where_its_configuration_says_it_listens(
    serve: ServeProcess, tmp_path: Path
) -> None:
    port = serve.target.rpartition(":")[2]
    config = tmp_path / "mtsg.toml"
    config.write_text(f'[server]\nlisten = "0.0.0.0:{port}"\n')
    plain = {name: value for name, value in os.environ.items() if not name.startswith("MTSG_")}

    def run(*arguments: str, **variables: str) -> subprocess.CompletedProcess[str]:
        env = {**plain, **variables}
        return subprocess.run([*MTSG, *arguments], capture_output=True, text=True, timeout=30, env=env)

    assert run("health", "--config", str(config)).stdout.strip() == "SERVING"  # 0.0.0.0 is reached on loopback
    assert run("health", MTSG_SERVER_LISTEN=f"127.0.0.1:{port}").stdout.strip() == "SERVING"
    assert run("health", MTSG_TARGET=serve.target).stdout.strip() == "SERVING"
    checked = run("check", "--example", "clean-login", "--config", str(config))
    assert checked.returncode == 0 and checked.stdout.startswith("ALLOW")
    nowhere = run("health", MTSG_SERVER_LISTEN="127.0.0.1:0")
    assert nowhere.returncode == 2 and "port 0 names no port to reach; pass --target" in nowhere.stderr


def test_serve_refuses_a_corrupt_database_and_leaves_it_alone(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    corrupt = data / "mtsg.sqlite3"
    corrupt.write_bytes(b"this is not a database" * 100)
    result = subprocess.run(
        serve_command(str(data)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "cannot use SQLite database" in result.stderr
    assert corrupt.read_bytes() == b"this is not a database" * 100


@pytest.mark.parametrize(
    "command",
    [
        ["commands", "list"],
        ["commands", "status"],
        ["valve", "status"],
        ["valve", "reset", "--reason", "drill"],
        ["blocklist", "status"],
        ["blocklist", "list"],
        ["audit", "list"],
        ["policy", "versions"],
        ["verdicts", "list", "--customer", "c-1"],
        ["purge", "--dry-run"],
    ],
    ids=" ".join,
)
def test_a_command_run_where_there_is_no_store_says_so_and_creates_none(tmp_path: Path, command: list[str]) -> None:
    result = run_mtsg(*command, "--data-dir", str(tmp_path / "elsewhere"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"no mtsg store at {tmp_path / 'elsewhere' / 'mtsg.sqlite3'}" in result.stderr
    assert not (tmp_path / "elsewhere" / "mtsg.sqlite3").exists()


@pytest.mark.parametrize("command", [["blocklist", "import"], ["policy", "apply"]], ids=" ".join)
@pytest.mark.parametrize(("given", "reason"), [("typo.csv", "No such file or directory"), (".", "Is a directory")])
def test_a_seeding_command_given_a_file_it_cannot_read_says_so_and_creates_no_store(
    tmp_path: Path, command: list[str], given: str, reason: str
) -> None:
    """Before, the store was made first (in the wrong place, when --data-dir was forgotten too)."""
    result = run_mtsg(*command, given, "--data-dir", str(tmp_path / "elsewhere"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"cannot read {given}: {reason}" in result.stderr
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize(
    ("command", "name", "content", "complaint"),
    [
        (["blocklist", "import"], "feed.csv", "", "feed.csv is empty (0 bytes): nothing to import"),
        (["blocklist", "import"], "feed.txt", "x\n", "cannot tell the format of feed.txt"),
        (["blocklist", "import"], "feed.json", '{"type": "bundle", "objects": [\n', "line 2: not valid JSON"),
        (["blocklist", "import"], "feed.jsonl", "", "feed.jsonl is empty (0 bytes)"),
        (["policy", "apply"], "policy.toml", "[[scenarios]\n", "policy.toml: 1 problem; nothing was applied"),
        (["policy", "apply"], "policy.toml", "", "a policy needs at least one [[scenarios]] table"),
    ],
)
def test_a_seeding_command_refuses_a_bad_file_before_it_makes_a_store(
    tmp_path: Path, command: list[str], name: str, content: str, complaint: str
) -> None:
    """Given in the wrong directory (no --data-dir), such a file made a new store there before it was refused."""
    (tmp_path / name).write_text(content)
    result = run_mtsg(*command, name, "--data-dir", str(tmp_path / "elsewhere"), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert complaint in result.stderr
    assert not (tmp_path / "elsewhere").exists()


def test_an_entry_refused_by_blocklist_add_makes_no_store(tmp_path: Path) -> None:
    entry = ("--key-type", "apk_sha256", "--value", "abc", "--category", "remote_control")
    result = run_mtsg("blocklist", "add", *entry, "--data-dir", str(tmp_path / "elsewhere"), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "value: must be 64 hex digits, got 3 characters" in result.stderr
    assert not (tmp_path / "elsewhere").exists()


def test_seeding_the_registry_makes_the_store(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "new")]
    added = subprocess.run(
        [
            *MTSG,
            "blocklist",
            "add",
            "--key-type",
            "package_name",
            "--value",
            "com.seeded.app",
            "--category",
            "voice_phishing",
            *data,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    listed = subprocess.run([*MTSG, "blocklist", "list", *data], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and "com.seeded.app" in listed.stdout


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        (
            ["audit", "list", "--limit", "-1"],
            "argument --limit: expected a whole number from 1 to 9223372036854775807, got '-1'",
        ),
        (["blocklist", "list", "--limit", "0"], "argument --limit: expected a whole number from 1 to"),
        (["commands", "list", "--limit", "ten"], "argument --limit: expected a whole number from 1 to"),
        (["policy", "versions", "--limit", "0"], "argument --limit: expected a whole number"),
        (["verdicts", "list", "--customer", "c", "--hours", "nan"], "argument --hours: expected a number above 0"),
        (["policy", "shadow-report", "--hours", "-2"], "argument --hours: expected a number above 0"),
        (["valve", "reset", "--reason", "   "], "argument --reason: must say why"),
        (["valve", "reset", "--reason", "ok\x1b[2J"], "argument --reason: must not contain control characters"),
        (["blocklist", "revoke", "bl_x", "--reason", ""], "argument --reason: must say why"),
        (["valve", "reset", "--reason", "ok", "--actor", "eve\x07"], "argument --actor: must not contain control"),
        (["commands", "list", "--before", "-5"], "argument --before: expected a whole number from 1 to"),
        (["policy", "versions", "--before", "0"], "argument --before: expected a whole number from 1 to"),
        (
            ["audit", "list", "--limit", "9" * 20],
            "argument --limit: expected a whole number from 1 to 9223372036854775807",
        ),
        (["commands", "list", "--before", "9" * 20], "argument --before: expected a whole number from 1 to"),
        (["verdicts", "list", "--customer", ""], "argument --customer: must not be empty"),
        (["commands", "list", "--customer", " "], "argument --customer: must not be empty"),
        (["auth", "token", "--name", "", "--role", "app"], "argument --name: must not be empty"),
        (["check", "--example", "clean-login", "--timeout", "-1"], "argument --timeout: expected a number above 0"),
        (["health", "--timeout", "nan"], "argument --timeout: expected a number above 0"),
        # gRPC made a deadline this far off one already passed: an instant DEADLINE_EXCEEDED.
        (["health", "--timeout", "1e10"], "argument --timeout: expected at most 3600 seconds, got '1e10'"),
        (["check", "--example", "clean-login", "--timeout", "7200"], "argument --timeout: expected at most 3600"),
        # Before: "0 entries" and exit 0, as if the registry had none of that key type.
        (["blocklist", "list", "--key-type", "pakage_name"], "argument --key-type: unknown value 'pakage_name'"),
        (["blocklist", "list", "--category", "vishing"], "argument --category: unknown value 'vishing'; expected"),
        (
            [
                "blocklist",
                "add",
                "--key-type",
                "package_name",
                "--value",
                "com.a.b",
                "--category",
                "spyware",
                "--severity",
                "huge",
            ],
            "argument --severity: unknown value 'huge'; expected one of low, medium, high, critical",
        ),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_operators_arguments_are_checked_before_anything_is_done(
    tmp_path: Path, command: list[str], problem: str
) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    assert subprocess.run([*MTSG, "migrate", *data], capture_output=True, timeout=60).returncode == 0
    result = subprocess.run([*MTSG, *command, *data], capture_output=True, text=True, timeout=60)
    audit = subprocess.run([*MTSG, "audit", "list", *data], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and problem in result.stderr, result.stderr
    assert audit.stdout == ""  # nothing was reset, revoked or recorded


def test_adding_an_entry_that_already_expired_is_refused(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    entry = ["--key-type", "package_name", "--value", "com.old.one", "--category", "spyware"]
    result = subprocess.run(
        [*MTSG, "blocklist", "add", *entry, "--valid-until", "2001-01-01T00:00:00Z", *data],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "--valid-until is already past" in result.stderr
    listed = subprocess.run([*MTSG, "blocklist", "list", *data], capture_output=True, text=True, timeout=60)
    assert "com.old.one" not in listed.stdout


@pytest.mark.parametrize("arguments", [["policy", "codes"], ["config", "show"]])
def test_a_reader_that_leaves_early_ends_the_command_quietly(tmp_path: Path, arguments: list[str]) -> None:
    """`mtsg policy codes | head -1`: before, a BrokenPipeError traceback on stderr."""
    reader, writer = os.pipe()
    os.close(reader)  # gone before the first write, so every write fails: no race with the pipe's buffer
    try:
        result = subprocess.run(
            [*MTSG, *arguments], stdout=writer, stderr=subprocess.PIPE, text=True, timeout=60, cwd=tmp_path
        )
    finally:
        os.close(writer)
    assert (result.returncode, result.stderr) == (1, "")


def test_output_read_by_a_reader_that_leaves_early_ends_quietly(tmp_path: Path) -> None:
    """`mtsg commands list | head -2`: the reader goes away, and the command says nothing of it."""
    data = ["--data-dir", str(tmp_path / "d")]
    assert run_mtsg("migrate", *data, cwd=tmp_path).returncode == 0
    for customer in ("c-1", "c-2", "c-3"):
        assert run_mtsg("commands", "unfreeze", customer, "--reason", "checked", *data, cwd=tmp_path).returncode == 0
    for arguments in (
        ["commands", "list", *data],
        ["audit", "list", *data],
        ["policy", "codes"],
        ["policy", "default"],
    ):
        process = subprocess.Popen([*MTSG, *arguments], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
        assert process.stdout is not None
        process.stdout.close()  # gone before the command writes a line
        _, error = process.communicate(timeout=60)
        assert error == b"", (arguments, error)


def test_a_command_making_a_new_store_prints_no_log_lines(tmp_path: Path) -> None:
    applied = run_mtsg("policy", "apply", str(SHIPPED), "--data-dir", str(tmp_path / "new"), cwd=tmp_path)
    assert applied.returncode == 0
    assert applied.stderr == ""  # no "applying schema migration" JSON among what a person reads
    assert applied.stdout.startswith("policy version 1 is in force")


def _held_lookups(metrics_port: object, result: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    found = re.search(rf'^mtsg_held_inventory_lookups_total{{result="{result}"}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_check_with_a_digests_file_sends_an_unchanged_inventory_as_its_digest(
    serve: ServeProcess, tmp_path: Path
) -> None:
    metrics_port = serve.log[-1]["metrics_port"]
    login = {
        "telemetry": {
            "customer_id": "cust-digest",
            "device_id": "dev-digest",
            "installed_apps": [
                {
                    "package_name": "com.kakao.talk",
                    "label": "KakaoTalk",
                    "installer_class": "INSTALLER_CLASS_OFFICIAL_STORE",
                },
                {"package_name": "com.teamviewer.quicksupport.market", "label": "TeamViewer QuickSupport"},
            ],
        }
    }
    check_file, digests = tmp_path / "login.json", tmp_path / "digests.json"
    check_file.write_text(json.dumps(login))
    first = _check(serve.target, str(check_file), "--inventory-digests", str(digests))
    assert first.returncode == 0, first.stderr
    held = json.loads(digests.read_text())["dev-digest"]
    assert f"inventory held by digest {held}" in first.stdout
    assert _held_lookups(metrics_port, "memory") == 0  # the list went with the first login

    second = _check(serve.target, str(check_file), "--inventory-digests", str(digests), "--json")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["inventory_digest"] == held
    assert _held_lookups(metrics_port, "memory") == 1  # the second sent the digest alone

    # Another device with the same apps: a remembered digest the gateway does not hold for it is
    # refused, and the check sends the list again on its own.
    login["telemetry"]["device_id"] = "dev-digest-2"  # type: ignore[index]
    check_file.write_text(json.dumps(login))
    digests.write_text(json.dumps({"dev-digest-2": held}))
    third = _check(serve.target, str(check_file), "--inventory-digests", str(digests))
    assert third.returncode == 0, third.stderr
    assert _held_lookups(metrics_port, "unknown") == 1
    assert json.loads(digests.read_text()) == {"dev-digest-2": held}

    digests.write_text("[1, 2]")
    broken = _check(serve.target, str(check_file), "--inventory-digests", str(digests))
    assert broken.returncode == 2 and "must be a JSON object of device ids to digests" in broken.stderr
