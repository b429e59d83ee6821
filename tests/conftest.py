"""Shared fixtures: a real gateway on a free local port, and a real client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.client import MtsgClient
from gateway.config import load_config
from gateway.server import RunningGateway, start_gateway


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    config = load_config(
        environ={},
        overrides={
            ("server", "listen"): ("127.0.0.1:0", "test"),
            ("server", "metrics_listen"): ("127.0.0.1:0", "test"),
            ("store", "data_dir"): (str(tmp_path / "data"), "test"),
        },
    ).config
    running = await start_gateway(config)
    yield running
    await running.stop(grace=1.0)


@pytest.fixture
async def client(gateway: RunningGateway) -> AsyncIterator[MtsgClient]:
    async with MtsgClient(gateway.target, timeout=30) as connected:
        yield connected
