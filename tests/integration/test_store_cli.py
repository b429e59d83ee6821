"""`mtsg migrate` and `mtsg store copy` against a real SQLite installation and real PostgreSQL databases.

The embedded installation is filled by a real gateway (logins with commands,
idempotency keys, a blocklist entry, a phone change, a second policy version),
copied to PostgreSQL with the CLI, and a gateway started on the copy must carry
on as if nothing happened: the same retried login returns the same verdict, the
blocklist still matches, the policy version is the same, and new commands
continue the feed after the copied ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import asyncpg
import pytest

from gateway.client import MtsgClient
from gateway.generated.mtsg.v1 import common_pb2, policy_service_pb2
from gateway.policy.knowledge import shipped_policy_document
from gateway.server.start import start_gateway
from gateway.store import open_database
from gateway.store.migrate import load_migrations
from tests.helpers import app, freezing_login, gateway_config, package_entry_request, phone_change, telemetry
from tests.integration.conftest import MTSG, LoggedProcess, run_mtsg, serve_command
from tests.postgres import PostgresDatabases

EVIL_PACKAGE = "com.copy.fake.bank"


def mtsg(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_mtsg(*arguments, cwd=cwd)


async def test_an_embedded_installation_moves_to_postgresql_and_carries_on(
    tmp_path: Path, postgres: PostgresDatabases
) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'data' / 'mtsg.sqlite3'}"
    embedded = await start_gateway(gateway_config(tmp_path))
    async with MtsgClient(embedded.target) as client:
        login = freezing_login("cust-a")
        first = await client.check_login(login, request_id="login-1")
        for customer in ("cust-a", "cust-b", "cust-a"):
            await client.check_login(freezing_login(customer))
        await client.report_phone_number_changes([phone_change("cust-b")])
        await client.blocklist.AddEntry(package_entry_request(EVIL_PACKAGE, "CopyFake"), timeout=10)
        document = shipped_policy_document().replace("Freeze on", "Copied: freeze on", 1)
        await client.policy.ApplyPolicy(policy_service_pb2.ApplyPolicyRequest(document=document), timeout=10)
    last_cursor = await embedded.store.commands.last_cursor()
    await embedded.stop(grace=1.0)

    target = await postgres.create(migrated=False)
    try:
        copied = mtsg("store", "copy", "--from", sqlite_url, "--to", target, cwd=tmp_path)
        assert copied.returncode == 0, copied.stderr
        assert "every count and checksum matches" in copied.stdout
        assert "target: applying 0001_initial" in copied.stderr and "commands: 4 rows copied" in copied.stderr
        verdict_line = next(line for line in copied.stdout.splitlines() if line.startswith("verdicts "))
        assert verdict_line.split()[1:3] == ["4", "4"] and verdict_line.endswith("ok")

        again = mtsg("store", "copy", "--from", sqlite_url, "--to", target, cwd=tmp_path)
        assert again.returncode == 1 and "the target is not empty (4 rows in verdicts)" in again.stderr

        moved = await start_gateway(gateway_config(tmp_path, target))
        try:
            async with MtsgClient(moved.target) as client:
                retried = await client.check_login(login, request_id="login-1")
                assert retried.verdict_id == first.verdict_id
                flagged = await client.check_login(telemetry(installed_apps=[app(EVIL_PACKAGE)]))
                assert flagged.action == common_pb2.ACTION_FREEZE
                assert any(reason.code.startswith("MALICIOUS_APP") for reason in flagged.reasons)
                assert flagged.policy_version == "2"
            assert await moved.store.commands.last_cursor() == last_cursor + 1
            assert await moved.store.count_rows("phone_number_changes") == 1
        finally:
            await moved.stop(grace=1.0)
    finally:
        await postgres.drop(target)


async def test_migrate_reports_applies_and_is_idempotent(tmp_path: Path, postgres: PostgresDatabases) -> None:
    shipped = load_migrations("postgresql")
    latest = f"{shipped[-1].version:04d}_{shipped[-1].name}"
    url = await postgres.create(migrated=False)
    try:
        pending = mtsg("migrate", "--url", url, "--status", cwd=tmp_path)
        assert pending.returncode == 3 and f"schema version 0, this mtsg ships {len(shipped)}" in pending.stdout
        assert "pending: 0001_initial, 0002_blocklist" in pending.stdout
        applied = mtsg("migrate", "--url", url, cwd=tmp_path)
        assert applied.returncode == 0, applied.stderr
        assert f"applying {latest}" in applied.stderr and f"schema version {len(shipped)}" in applied.stdout
        again = mtsg("migrate", "--url", url, cwd=tmp_path)
        assert again.returncode == 0 and "up to date" in again.stdout
        assert mtsg("migrate", "--url", url, "--status", cwd=tmp_path).returncode == 0
        connection = await asyncpg.connect(url)
        try:
            assert await connection.fetchval("SELECT COUNT(*) FROM schema_migrations") == len(shipped)
        finally:
            await connection.close()
    finally:
        await postgres.drop(url)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_migrations_started_together_apply_each_version_once(
    tmp_path: Path, postgres: PostgresDatabases, backend: str
) -> None:
    """An operator's `mtsg migrate` beside a starting gateway's, say; on SQLite two of four used to fail."""
    url = await postgres.create(migrated=False) if backend == "postgresql" else ""
    where = ["--url", url] if url else ["--data-dir", str(tmp_path / "d")]
    try:
        runs = [
            subprocess.Popen(
                [*MTSG, "migrate", *where], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
            )
            for _ in range(4)
        ]
        results = [(*run.communicate(timeout=120), run.returncode) for run in runs]
        assert [status for _, _, status in results] == [0] * 4, [error for _, error, _ in results]
        outputs = [output.splitlines()[-1] for output, _, _ in results]
        shipped = len(load_migrations(backend))
        assert sorted(line.split(" migration")[0] for line in outputs if line.startswith("applied")) == [
            f"applied {shipped}"
        ]
        assert all(line.startswith("up to date") for line in outputs if not line.startswith("applied"))
    finally:
        if url:
            await postgres.drop(url)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_store_a_later_release_migrated_is_reported_not_called_up_to_date(
    tmp_path: Path, postgres: PostgresDatabases, backend: str
) -> None:
    """Rolling back to this release after a later one migrated: before, "up to date" and silence at start."""
    url = await postgres.create() if backend == "postgresql" else ""
    where = ["--url", url] if url else ["--data-dir", str(tmp_path / "d")]
    latest = len(load_migrations(backend))
    try:
        assert mtsg("migrate", *where, cwd=tmp_path).returncode == 0
        db = await open_database(url, tmp_path / "d", 1)
        try:
            await db.execute("INSERT INTO schema_migrations VALUES (?, 'later_release', 0)", (latest + 1,))
        finally:
            await db.close()
        later = f"{latest + 1:04d}_later_release"

        status = mtsg("migrate", *where, "--status", cwd=tmp_path)
        migrate = mtsg("migrate", *where, cwd=tmp_path)
        assert status.returncode == 4 and f"a later release applied {later}" in status.stdout
        assert migrate.returncode == 0 and f"a later release applied {later}" in migrate.stdout
        assert "up to date" not in status.stdout + migrate.stdout

        env = {**os.environ, "MTSG_STORE_URL": url, "MTSG_PRIVACY_PHONE_HASH_KEY_FILE": str(tmp_path / "phone.key")}
        serve = LoggedProcess(serve_command(tmp_path / "d"), tmp_path / "serve.log", env, tmp_path)
        try:
            serve.wait_for_log("serving")  # it still serves: a rollback must not be blocked
            newer = [line for line in serve.log_path.read_text().splitlines() if "schema is newer" in line]
            assert len(newer) == 1 and later in newer[0] and '"level": "error"' in newer[0]
        finally:
            serve.stop()
        if backend == "sqlite":
            copy = mtsg(
                "store",
                "copy",
                "--from",
                f"sqlite:///{tmp_path / 'd' / 'mtsg.sqlite3'}",
                "--to",
                f"sqlite:///{tmp_path / 'copy.db'}",
                cwd=tmp_path,
            )
            assert copy.returncode != 0 and "newer than this mtsg's" in copy.stderr
    finally:
        if url:
            await postgres.drop(url)


def test_store_commands_refuse_bad_input_with_a_clear_message(tmp_path: Path) -> None:
    for arguments, status, message in [
        (("store", "copy", "--from", "mysql://x", "--to", "sqlite:///y.db"), 2, "--from must be sqlite:///PATH"),
        (("store", "copy", "--from", "sqlite:///nope.db", "--to", "sqlite:///y.db"), 2, "no SQLite database at"),
        (("store", "copy", "--from", "sqlite:///a.db", "--to", "sqlite:///a.db"), 2, "are the same database"),
        (("migrate", "--url", "postgresql://postgres@127.0.0.1:1/nothing"), 1, "cannot connect to PostgreSQL"),
        # The drivers read a password from the query as from the user part: neither is shown.
        (
            ("migrate", "--url", "postgresql://postgres:pw-1@127.0.0.1:1/nothing?password=pw-2&sslmode=disable"),
            1,
            "at postgresql://postgres:***@127.0.0.1:1/nothing?password=***&sslmode=disable:",
        ),
        (("store", "copy", "--from", "sqlite:///empty.db", "--to", "sqlite:///y.db"), 1, "the source holds no mtsg"),
    ]:
        (tmp_path / "empty.db").touch()
        result = mtsg(*arguments, cwd=tmp_path)
        assert result.returncode == status and message in result.stderr, (arguments, result.stderr)
    assert not (tmp_path / "y.db").exists()


async def test_a_serving_embedded_installation_is_backed_up_by_copy_and_restored_from_the_file(
    tmp_path: Path,
) -> None:
    """`mtsg store copy` to a new SQLite file while logins are being written: the copy is one
    consistent moment, its check passes, and a gateway restored from it carries on.

    Before, the check read the source again after the copy: every login written meanwhile was
    reported as a mismatch (exit 1), so an online backup could not be verified."""
    live = await start_gateway(gateway_config(tmp_path))
    backup = tmp_path / "backups" / "mtsg-backup.sqlite3"
    written = 0
    try:
        async with MtsgClient(live.target) as client:
            login = freezing_login("cust-a")
            first = await client.check_login(login, request_id="login-1")

            async def keep_logging_in() -> None:
                nonlocal written
                while True:
                    await client.check_login(freezing_login(f"cust-{written % 50}"))
                    written += 1

            logins = asyncio.create_task(keep_logging_in())
            try:
                copy = await asyncio.create_subprocess_exec(
                    *MTSG,
                    "store",
                    "copy",
                    "--from",
                    f"sqlite:///{tmp_path / 'data' / 'mtsg.sqlite3'}",
                    "--to",
                    f"sqlite:///{backup}",
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    cwd=tmp_path,
                )
                out, err = await asyncio.wait_for(copy.communicate(), timeout=120)
                during = written
                await asyncio.sleep(0.3)  # logins go on after the copy's snapshot
            finally:
                logins.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await logins
        stored = await live.store.count_rows("verdicts")
    finally:
        await live.stop(grace=1.0)

    assert copy.returncode == 0, err.decode()
    assert "every count and checksum matches" in out.decode()
    assert during > 0 and written > during  # logins were written while it copied, and after
    verdict_line = next(line for line in out.decode().splitlines() if line.startswith("verdicts "))
    copied = int(verdict_line.split()[1])
    assert 1 <= copied < stored

    restored_dir = tmp_path / "restored" / "data"
    restored_dir.mkdir(parents=True)
    shutil.copy(backup, restored_dir / "mtsg.sqlite3")
    restored = await start_gateway(
        gateway_config(tmp_path / "restored", privacy__phone_hash_key_file=str(tmp_path / "phone-hash.key"))
    )
    try:
        assert await restored.store.count_rows("verdicts") == copied
        async with MtsgClient(restored.target) as client:
            retried = await client.check_login(login, request_id="login-1")
            assert retried.verdict_id == first.verdict_id
            assert (await client.check_login(telemetry())).action == common_pb2.ACTION_ALLOW
    finally:
        await restored.stop(grace=1.0)


async def test_a_reading_command_pointed_at_an_empty_database_says_so_and_creates_nothing(
    tmp_path: Path, postgres: PostgresDatabases
) -> None:
    """Before, `mtsg valve status` with MTSG_STORE_URL naming the wrong (empty) database migrated it,
    leaving 21 tables there, and answered from the empty store as if all were well."""
    empty = await postgres.create(migrated=False)
    try:
        environment = {"MTSG_STORE_URL": empty}
        for command in (["valve", "status"], ["commands", "list"], ["policy", "versions"]):
            refused = run_mtsg(*command, cwd=tmp_path, env=environment)
            assert refused.returncode == 2, refused.stderr
            assert "no mtsg store in postgresql://" in refused.stderr and "mtsg migrate" in refused.stderr
        connection = await asyncpg.connect(empty)
        try:
            assert await connection.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
        finally:
            await connection.close()
        copied = run_mtsg("store", "copy", "--from", empty, "--to", f"sqlite:///{tmp_path / 'copy.db'}", cwd=tmp_path)
        assert copied.returncode == 1 and "the source holds no mtsg store" in copied.stderr, copied.stderr
        assert not (tmp_path / "copy.db").exists()  # before, an empty store was made there first
        assert run_mtsg("migrate", cwd=tmp_path, env=environment).returncode == 0
        listed = run_mtsg("commands", "list", cwd=tmp_path, env=environment)
        assert listed.returncode == 0 and "no commands" in listed.stderr
    finally:
        await postgres.drop(empty)
