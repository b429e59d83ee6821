"""A configured remote-control app list on a real gateway: used, and re-read when the file changes.

Gangs move to a remote-support app nobody has flagged yet; the security team adds it to the
list, and the gateway must act on it without a restart, while a bad edit keeps the list in force.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import structlog.testing

from gateway.client import MtsgClient
from gateway.policy.knowledge import KnowledgeError, load_knowledge
from gateway.policy.remote_control_watch import RemoteControlListWatch
from gateway.registry.refresh import KnowledgeHolder
from gateway.server.start import start_gateway
from tests.gateway.conftest import eventually
from tests.helpers import freezing_login, gateway_config

_ENTRY = '[[app]]\npackage = "{package}"\nname = "{name}"\nvendor = "{name} Inc."\nsource = "test"\n\n'
TEAMVIEWER = _ENTRY.format(package="com.teamviewer.quicksupport.market", name="TeamViewer QuickSupport")
ANYDESK = _ENTRY.format(package="com.anydesk.anydeskandroid", name="AnyDesk")


def _replace(path: Path, text: str) -> None:
    """Write a new file and rename it over the old one, as the module's docstring asks operators to."""
    staged = path.with_suffix(".new")
    staged.write_text(text)
    os.replace(staged, path)


async def _remote_control_codes(client: MtsgClient) -> set[str]:
    """The remote-control findings of AnyDesk running during a call."""
    answer = await client.check_login(freezing_login())
    return {reason.code for reason in answer.reasons if reason.code.startswith("REMOTE_CONTROL")}


async def test_an_app_added_to_the_list_is_detected_without_a_restart(tmp_path: Path) -> None:
    listed = tmp_path / "remote-control.toml"
    listed.write_text(TEAMVIEWER)
    gateway = await start_gateway(gateway_config(tmp_path, signals__remote_control_apps_file=str(listed)))
    try:
        async with MtsgClient(gateway.target) as client:
            assert await _remote_control_codes(client) == set()  # AnyDesk is not on this list

            _replace(listed, TEAMVIEWER + ANYDESK)
            await eventually(lambda: _remote_control_codes(client), timeout=10, what="AnyDesk detected")

            with structlog.testing.capture_logs() as logs:
                _replace(listed, TEAMVIEWER + "[[app]]\npackage = ")  # a bad edit
                await eventually(
                    lambda: any(line["event"].startswith("remote-control app list changed") for line in logs),
                    what="the bad edit reported",
                )
            assert await _remote_control_codes(client) == {"REMOTE_CONTROL_APP_ACTIVE"}  # the list in force stays
    finally:
        await gateway.stop(grace=1.0)


async def test_a_gateway_does_not_start_on_a_bad_list(tmp_path: Path) -> None:
    listed = tmp_path / "remote-control.toml"
    listed.write_text(TEAMVIEWER + TEAMVIEWER)
    with pytest.raises(KnowledgeError, match="listed twice"):
        await start_gateway(gateway_config(tmp_path, signals__remote_control_apps_file=str(listed)))


async def test_a_removed_list_is_reported_once_and_its_return_taken(tmp_path: Path) -> None:
    """A file that cannot be read was reported at every check, once a second, for as long as it was gone."""
    listed = tmp_path / "remote-control.toml"
    listed.write_text(TEAMVIEWER)
    watch = RemoteControlListWatch(listed)
    holder = KnowledgeHolder(load_knowledge(watch.catalog))
    listed.unlink()
    with structlog.testing.capture_logs() as logs:
        for _ in range(5):
            assert await watch.check(holder) is False
    assert [line["event"] for line in logs] == ["remote-control app list cannot be read; the loaded one stays in force"]
    assert set(holder.current.remote_control.by_package) == {"com.teamviewer.quicksupport.market"}

    listed.write_text(TEAMVIEWER + ANYDESK)
    assert await watch.check(holder) is True
    assert "com.anydesk.anydeskandroid" in holder.current.remote_control.by_package
