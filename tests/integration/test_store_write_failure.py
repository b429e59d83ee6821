"""A store that cannot write (a full disk, an I/O error) on a real `mtsg serve`: logins get the fail
mode, nothing already stored is lost or damaged, and the gateway recovers by itself.

The gateway process is started with a file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored), so
once its SQLite files would grow past it every write fails as on a full disk (SQLite reports a
disk I/O error; a disk that is really full reports "database or disk is full", and both reach the
gateway as the same sqlite3 error). Raising the limit from outside (prlimit) gives the space back
without a restart.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import sqlite3
from pathlib import Path

from gateway.client import MtsgClient
from gateway.generated.mtsg.v1 import common_pb2, threat_signal_service_pb2
from tests.helpers import freezing_login, telemetry
from tests.integration.conftest import LoggedProcess, serve_command

FILE_LIMIT_BYTES = 3_000_000  # room for the schema and a few dozen logins, far less than a WAL's growth


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT_BYTES, resource.RLIM_INFINITY))


def _fail_mode(verdict: threat_signal_service_pb2.CheckLoginResponse) -> bool:
    return any(reason.code == "STORE_UNAVAILABLE" for reason in verdict.reasons)


async def _logins_until_the_store_fails(client: MtsgClient) -> tuple[int, int]:
    """Logins, a freezing one now and then, until one gets the fail mode: (stored, of them FREEZE)."""
    stored = frozen = 0
    for number in range(2000):
        verdict = await client.check_login(freezing_login() if number % 10 == 0 else telemetry())
        if _fail_mode(verdict):
            assert verdict.action == common_pb2.ACTION_STEP_UP
            return stored, frozen
        stored += 1
        frozen += verdict.action == common_pb2.ACTION_FREEZE
    raise AssertionError(f"the store never failed within {stored} logins: is the file-size limit in force?")


def test_logins_get_the_fail_mode_while_the_store_cannot_write_and_nothing_stored_is_lost(tmp_path: Path) -> None:
    data = tmp_path / "data"
    gateway = LoggedProcess(serve_command(data), tmp_path / "serve.log", dict(os.environ), tmp_path, _limit_file_size)
    try:
        target = f"127.0.0.1:{gateway.wait_for_log('serving')['port']}"

        async def scenario() -> tuple[int, int]:
            async with MtsgClient(target) as client:
                stored, frozen = await _logins_until_the_store_fails(client)
                for _ in range(20):  # it goes on answering, each time with the fail mode
                    verdict = await client.check_login(freezing_login())
                    assert _fail_mode(verdict) and verdict.action == common_pb2.ACTION_STEP_UP
                resource.prlimit(gateway.process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
                for _ in range(20):  # space is back: checked and stored again, no restart
                    verdict = await client.check_login(freezing_login())
                    assert not _fail_mode(verdict) and verdict.action == common_pb2.ACTION_FREEZE
                return stored + 20, frozen + 20

        stored, frozen = asyncio.run(scenario())
        assert frozen >= 21  # the scenario froze before the failure as well as after it
        gateway.process.send_signal(signal.SIGTERM)
        assert gateway.process.wait(timeout=30) == 0
    finally:
        gateway.stop()
    with sqlite3.connect(data / "mtsg.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT COUNT(*) FROM verdicts").fetchone() == (stored,)
        # Every FREEZE answered has its command; a fail-mode answer wrote none.
        assert db.execute("SELECT COUNT(*) FROM commands").fetchone() == (frozen,)
    assert "disk I/O error" in gateway.log_path.read_text()
