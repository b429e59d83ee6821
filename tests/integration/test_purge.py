"""Retention end to end: a gateway's own periodic purge, and `mtsg purge` run by an operator."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from gateway.client import MtsgClient
from gateway.server.start import start_gateway
from tests.helpers import freezing_login, gateway_config, telemetry
from tests.integration.conftest import run_mtsg

DAY = 86400.0


async def test_a_gateway_forgets_old_device_history_on_its_own(tmp_path: Path, store_url: str) -> None:
    offset = 0.0
    config = gateway_config(
        tmp_path,
        store_url,
        metrics=True,
        retention__device_history_days="1",
        retention__purge_interval_seconds="0.1",
    )
    gateway = await start_gateway(config, clock=lambda: time.time() + offset)
    try:
        async with MtsgClient(gateway.target) as client:
            for _ in range(3):
                await client.check_login(telemetry())
            assert await gateway.store.count_rows("customer_devices") == 3
            await asyncio.sleep(0.3)
            assert await gateway.store.count_rows("customer_devices") == 3  # young history stays
            offset = 2 * DAY
            deadline = time.monotonic() + 10
            while await gateway.store.count_rows("customer_devices") and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert await gateway.store.count_rows("customer_devices") == 0
            assert await gateway.store.count_rows("verdicts") == 3  # verdicts are kept for ever by default
        # The job counts a pass once all its tables are done: the rows can be gone a moment before.
        expected = (
            'mtsg_purged_rows_total{table="customer_devices"} 3.0',
            'mtsg_purged_rows_total{table="login_nonces"} 3.0',
        )
        async with httpx.AsyncClient() as http:
            while True:
                text = (await http.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics")).text
                if all(line in text for line in expected) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
        for line in expected:
            assert line in text
    finally:
        await gateway.stop(grace=1.0)


def _counts(stdout: str) -> dict[str, str]:
    """The per-table lines of `mtsg purge`: table name, then the row count."""
    return {line.split()[0]: line.split()[1] for line in stdout.splitlines() if line.split()[0].isidentifier()}


async def test_mtsg_purge_counts_first_then_removes_with_progress(tmp_path: Path) -> None:
    gateway = await start_gateway(gateway_config(tmp_path))
    async with MtsgClient(gateway.target) as client:
        for _ in range(5):
            await client.check_login(telemetry())
        await client.check_login(freezing_login())  # its command is pending: it and its verdict stay
    await gateway.stop(grace=1.0)
    data = str(tmp_path / "data")
    # A few seconds of retention: everything just written is past it once we have waited.
    ages = {"MTSG_RETENTION_DEVICE_HISTORY_DAYS": "0.00002", "MTSG_RETENTION_VERDICTS_DAYS": "0.00002"}
    await asyncio.sleep(2)

    dry = run_mtsg("purge", "--data-dir", data, "--dry-run", cwd=tmp_path, env=ages)
    assert dry.returncode == 0, dry.stderr
    assert "device history 2e-05 days" in dry.stderr and "commands kept for ever" in dry.stderr
    lines = _counts(dry.stdout)
    assert lines["customer_devices"] == "6"
    # Five verdicts are free; the FREEZE's verdict is held by its command.
    assert lines["verdicts"] == "5"

    done = run_mtsg("purge", "--data-dir", data, "--batch-size", "2", cwd=tmp_path, env=ages)
    assert done.returncode == 0, done.stderr
    assert "customer_devices: 6 rows removed" in done.stderr
    assert "verdicts: 5 rows removed" in done.stderr
    assert "rows removed in" in done.stdout

    again = run_mtsg("purge", "--data-dir", data, "--dry-run", cwd=tmp_path, env=ages)
    assert set(_counts(again.stdout).values()) == {"0"}

    gateway = await start_gateway(gateway_config(tmp_path))
    try:
        assert await gateway.store.count_rows("verdicts") == 1
        assert await gateway.store.count_rows("commands") == 1
    finally:
        await gateway.stop(grace=1.0)


def test_mtsg_purge_refuses_bad_settings_without_touching_anything(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    bad_batch = run_mtsg("purge", "--data-dir", data, "--batch-size", "-3", cwd=tmp_path)
    assert bad_batch.returncode == 2 and "--batch-size: expected a positive whole number" in bad_batch.stderr
    negative = run_mtsg("purge", "--data-dir", data, cwd=tmp_path, env={"MTSG_RETENTION_VERDICTS_DAYS": "-1"})
    assert negative.returncode == 2 and "retention.verdicts_days: must not be negative" in negative.stderr
    wrong_type = run_mtsg("purge", "--data-dir", data, cwd=tmp_path, env={"MTSG_RETENTION_COMMANDS_DAYS": "ninety"})
    assert wrong_type.returncode == 2 and "retention.commands_days" in wrong_type.stderr
    assert not (tmp_path / "data").exists()
