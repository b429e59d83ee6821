"""Replicas (or workers) applying one policy file at the same moment store it once.

At a rolling start with a changed file, or on a SIGHUP that reached every worker, each used to
find the file new before storing it, and each stored it: versions 2 and 3, the same document.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.config import Config
from gateway.server.start import RunningGateway, start_gateway
from tests.gateway.conftest import eventually
from tests.helpers import CALL_STEPS_UP, SHIPPED, gateway_config


def _config(tmp_path: Path, store_url: str, policy_file: Path) -> Config:
    return gateway_config(tmp_path, store_url, metrics=False, signals__policy_file=str(policy_file))


async def _stop(gateways: list[RunningGateway]) -> None:
    await asyncio.gather(*(gateway.stop(grace=1.0) for gateway in gateways))


async def test_replicas_starting_together_with_a_new_policy_file_store_it_once(tmp_path: Path, store_url: str) -> None:
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(CALL_STEPS_UP)
    config = _config(tmp_path, store_url, policy_file)
    gateways = list(await asyncio.gather(start_gateway(config), start_gateway(config)))
    try:
        versions = await gateways[0].store.policies.versions(10)
        assert [(stored.version, stored.applied_by) for stored in versions] == [
            (2, f"file:{policy_file}"),
            (1, "mtsg:shipped-default"),
        ]
        assert {gateway.knowledge.current.policy.version for gateway in gateways} == {"2"}
    finally:
        await _stop(gateways)


async def test_a_sighup_that_reaches_every_worker_stores_the_file_once(tmp_path: Path, store_url: str) -> None:
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(SHIPPED.read_text())
    config = _config(tmp_path, store_url, policy_file)
    gateways = [await start_gateway(config), await start_gateway(config)]
    try:
        policy_file.write_text(CALL_STEPS_UP)
        made = await asyncio.gather(*(gateway.policy_refresher.reload_file() for gateway in gateways))
        assert sorted(made) == [False, True]
        assert await gateways[0].store.policies.head_version() == 2
        await eventually(
            lambda: all(gateway.policy_refresher.version == 2 for gateway in gateways), what="version 2 in both"
        )
    finally:
        await _stop(gateways)
