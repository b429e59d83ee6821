"""Whatever a start began is undone, newest first, whether the start fails, is cancelled or ends in stop."""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.server.start import start_gateway
from tests.gateway.conftest import ReceiverKeyFiles, push_config
from tests.helpers import gateway_config


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _threads() -> set[str]:
    """Threads the gateway makes.  asyncio's executor belongs to the event loop and grpc's poller to
    grpc.aio itself: both outlive any one start."""
    return {
        thread.name
        for thread in threading.enumerate()
        if not thread.name.startswith("asyncio_") and "_poll_wrapper" not in thread.name
    }


async def _settled() -> set[asyncio.Task[object]]:
    """The tasks still alive besides this test's own, once anything cancelled has had a turn to end."""
    for _ in range(20):
        await asyncio.sleep(0.01)
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


async def test_a_start_that_fails_after_the_store_opened_leaves_nothing_running(tmp_path: Path) -> None:
    listen = _free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        metrics = taken.getsockname()[1]
        config = gateway_config(
            tmp_path, server__listen=f"127.0.0.1:{listen}", server__metrics_listen=f"127.0.0.1:{metrics}"
        )
        threads_before = _threads()
        # A worker of `mtsg serve --workers` skips the look at the ports, so the bind itself fails,
        # after the store was opened and the gRPC port bound.
        with pytest.raises(OSError, match=f"cannot serve metrics on 127.0.0.1:{metrics}"):
            await start_gateway(config, reuse_port=True)
    assert await _settled() == set()
    assert _threads() <= threads_before, "the store's thread outlived the failed start"
    assert _port_is_free(listen)


async def test_a_start_cancelled_once_it_serves_stops_everything_it_started(tmp_path: Path) -> None:
    listen = _free_port()
    config = gateway_config(tmp_path, metrics=True, server__listen=f"127.0.0.1:{listen}")
    threads_before = _threads()
    starting = asyncio.create_task(start_gateway(config))
    # The blocklist refresher starts after the gRPC server does: cancel at the start's next wait.
    while not any(task.get_name() == "blocklist-refresh" for task in asyncio.all_tasks()):
        assert not starting.done(), "the start ended before it could be cancelled"
        await asyncio.sleep(0)
    assert not _port_is_free(listen), "the gRPC server should be serving by now"
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert await _settled() == set()
    assert _threads() <= threads_before, "a thread (store, metrics endpoint) outlived the cancelled start"
    assert _port_is_free(listen)


async def test_stop_ends_every_task_and_thread_the_start_made(tmp_path: Path, key_files: ReceiverKeyFiles) -> None:
    config = replace(
        push_config(tmp_path, key_files, "http://127.0.0.1:9/hook"),
        server=replace(gateway_config(tmp_path, metrics=True).server, listen="127.0.0.1:0"),
    )
    threads_before = _threads()
    gateway = await start_gateway(config)
    started = {task.get_name() for task in await _settled()}
    assert {"blocklist-refresh"} <= started and len(started) >= 4, started
    assert _threads() > threads_before
    await gateway.stop(grace=0)
    assert await _settled() == set()
    assert _threads() <= threads_before
    assert _port_is_free(gateway.port)
