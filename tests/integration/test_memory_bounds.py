"""What a caller sends is never kept beyond a bound that counts bytes: a real `mtsg serve`, its real RSS.

The app token ships inside the banking app, so anyone who unpacks it can call CheckLogin. Logins whose
apps carry megabytes of fields the contract does not define (unknown protobuf fields), each login's
different, must be answered without the gateway's memory growing with them.
"""

from __future__ import annotations

import os
from pathlib import Path

import grpc

from gateway.generated.mtsg.v1 import threat_signal_service_pb2
from gateway.login.wire import CheckLoginWire
from tests.helpers import app, telemetry, unknown_field
from tests.integration.conftest import LoggedProcess, serve_command

LOGINS = 150
APPS_PER_LOGIN = 3
UNKNOWN_FIELD_BYTES = 1_300_000
# Before unknown fields were refused a place in the app cache, 150 such logins grew the gateway by
# about 580 MB (3.9 MB each, linearly); with them never kept, it stays flat but for allocator noise.
MAX_GROWTH_BYTES = 120 * 1024 * 1024


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _padded_login() -> bytes:
    """A login whose apps each carry a different 1.3 MB unknown field."""
    login = CheckLoginWire()
    login.telemetry.ParseFromString(telemetry().SerializeToString())
    for index in range(APPS_PER_LOGIN):
        body = app(f"com.padded.app{index}", label=f"Padded {index}").SerializeToString()
        login.telemetry.installed_apps.append(body + unknown_field(9_999, os.urandom(UNKNOWN_FIELD_BYTES)))
    return bytes(login.SerializeToString())


def test_apps_padded_with_unknown_fields_are_answered_and_never_kept(tmp_path: Path) -> None:
    process = LoggedProcess(serve_command(tmp_path / "data"), tmp_path / "gateway.log", dict(os.environ), tmp_path)
    try:
        target = f"127.0.0.1:{process.wait_for_log('serving')['port']}"
        identity = lambda data: data  # noqa: E731 - raw bytes both ways
        with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 8 * 1024 * 1024)]) as channel:
            check = channel.unary_unary("/mtsg.v1.ThreatSignalService/CheckLogin", identity, identity)
            for _ in range(10):  # warm up: allocator pools, the first imports, the store's caches
                check(_padded_login(), timeout=30)
            before = _rss_bytes(process.process.pid)
            for _ in range(LOGINS):
                answer = threat_signal_service_pb2.CheckLoginResponse.FromString(check(_padded_login(), timeout=30))
                assert answer.verdict_id.startswith("v_")
            grown = _rss_bytes(process.process.pid) - before
        assert grown < MAX_GROWTH_BYTES, f"the gateway grew by {grown / 2**20:.0f} MiB over {LOGINS} padded logins"
        print(
            f"\n{LOGINS} logins padded with {APPS_PER_LOGIN} x {UNKNOWN_FIELD_BYTES:,} unknown bytes: RSS grew "
            f"{grown / 2**20:.1f} MiB"
        )
    finally:
        process.stop()
