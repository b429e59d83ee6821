"""``mtsg serve --workers N``: N gateway processes answering on one port, sharing one store.

One Python process answers on one core (the GIL), so on a machine with several cores
the gateway runs several.  The kernel spreads new connections over every socket bound
to the port with SO_REUSEPORT; each worker is a whole gateway (its own gRPC server,
event loop, matcher, dispatcher) over the shared store, exactly as replicas on
PostgreSQL are, and SQLite's WAL lets several processes share one file.

gRPC's C core cannot survive a fork once it has servers or channels, so this
supervisor creates none: it migrates the store and creates the phone-hash key ring
once (so workers do not race to do it), reserves the port with a bound socket that
never listens (so port 0 resolves to one port for all), and forks the workers.  A
worker that dies after it was serving is replaced; one that cannot start stops all.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from multiprocessing.context import ForkProcess
from multiprocessing.queues import Queue
from types import FrameType

import structlog

from gateway.config import Config, join_listen, split_listen
from gateway.privacy.phone_hash import load_or_create_keys
from gateway.runtime.parent_death import end_with_parent
from gateway.server.listen_check import bind_alone, refuse_taken_ports, resolve_listen
from gateway.store import open_store

log = structlog.get_logger(__name__)

# A worker that crashed is started again after this pause (a crash loop does not spin the CPU).
_RESTART_PAUSE_SECONDS = 1.0
# Time a worker may take to start: opening the store and building a million-entry matcher.
_START_TIMEOUT_SECONDS = 300.0
_POLL_SECONDS = 0.2
# How long the store's threads may take to end after it is closed, before a fork is refused.
_THREAD_EXIT_SECONDS = 5.0


class WorkerStartError(RuntimeError):
    """A worker exited before it served: the same cause would stop every worker."""


@contextlib.contextmanager
def reserved_port(address: str) -> Iterator[str]:
    """Bind ``address`` with SO_REUSEPORT without listening, for the workers to share; yield it with its port.

    Held for the supervisor's life: port 0 becomes one real port for every worker.  The port is
    first bound without SO_REUSEPORT, which fails while anything else holds it: another program,
    or another ``mtsg serve --workers`` whose own sockets allow sharing.  Before, a second
    supervisor on the same port started without a word, and the kernel spread the logins over two
    installations with two stores.  Two supervisors starting within the same instant could both
    pass that check between its bind and the sharing bind, so a named lock (`_claimed_by_one`)
    is taken first.
    """
    listen = resolve_listen(address)
    with contextlib.ExitStack() as held:
        if listen.port:  # port 0 is a new port for each caller: nobody to race with
            held.enter_context(_claimed_by_one(address, str(listen.where[0]), listen.port))
        listen = bind_alone(listen, address)
        holder = held.enter_context(socket.socket(listen.family, listen.kind, listen.proto))
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            holder.bind(listen.where)
        except OSError as error:
            raise OSError(f"cannot listen on {address}: {error.strerror}") from error
        yield join_listen(split_listen(address)[0], holder.getsockname()[1])


def port_claim_name(host: str, port: int) -> str:
    """The abstract UNIX socket a supervisor holds for ``host:port`` (a leading NUL: no file, gone with its holder)."""
    return f"\0mtsg-serve-workers {host} {port}"


@contextlib.contextmanager
def _claimed_by_one(address: str, host: str, port: int) -> Iterator[None]:
    """Hold the port's claim, or refuse: only one supervisor at a time may reserve ``host:port``.

    An abstract socket lives in the network namespace, as the port does, and the kernel frees it
    when its last holder exits, however it exits: no stale lock file after a kill.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as claim:
        try:
            claim.bind(port_claim_name(host, port))
        except OSError as error:
            raise OSError(f"cannot listen on {address}: another mtsg serve --workers holds it") from error
        yield


def worker_config(config: Config, index: int) -> Config:
    """Worker ``index``'s configuration: the shared ports as resolved, its own metrics port (base + index)."""
    metrics = config.server.metrics_listen
    if metrics:
        host, port = split_listen(metrics)
        metrics = join_listen(host, port + index if port else 0)
    return replace(config, server=replace(config.server, metrics_listen=metrics))


async def _prepare_store(config: Config) -> int:
    store = await open_store(config.store.url, config.data_dir, config.store.pool_size)
    try:
        return await store.schema_version()
    finally:
        await store.close()


def prepare_shared_state(config: Config) -> None:
    """What every worker would otherwise do at once on a fresh data dir: migrate, make the key ring."""
    config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # its store and keys are the owner's alone
    load_or_create_keys(config.phone_hash_key_path)
    asyncio.run(_prepare_store(config))
    _await_other_threads(_THREAD_EXIT_SECONDS)
    if threading.active_count() != 1:  # forking with a live thread could copy a held lock
        raise RuntimeError("a thread outlived the store's preparation; refusing to fork workers")


def _await_other_threads(seconds: float) -> None:
    """Give the threads the store used a moment to finish: aiosqlite answers its ``close`` just before
    its thread returns, so a check right after closing could find the thread still alive (seen once in CI)."""
    deadline = time.monotonic() + seconds
    for thread in threading.enumerate():
        if thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))


def _stop_with_supervisor(supervisor: int) -> None:
    """A worker left behind by a supervisor killed outright would keep the port and the store
    without anyone to stop it: it is stopped with the supervisor."""
    if not end_with_parent(supervisor):
        log.warning("cannot tie this worker's life to the supervisor's", errno=ctypes.get_errno())


def _run_worker(config: Config, index: int, started: Queue[int], supervisor: int) -> None:
    """The body of one forked worker: an ordinary gateway on the shared port."""
    from gateway.observability.logging_setup import configure_logging
    from gateway.server.start import STARTUP_ERRORS, run_gateway

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)  # run_gateway installs its own on its loop
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # not the supervisor's; run_gateway installs its own
    _stop_with_supervisor(supervisor)
    configure_logging(config.logging.level, worker=index)
    try:
        asyncio.run(run_gateway(config, reuse_port=True, on_serving=lambda: started.put(index)))
    except STARTUP_ERRORS as error:
        print(f"mtsg serve (worker {index}): {error}", file=sys.stderr)
        sys.exit(1)


@dataclass
class _Worker:
    index: int
    process: ForkProcess
    serving: bool = False


class Supervisor:
    """Forks the workers, replaces one that dies, passes SIGTERM/SIGINT on to all and SIGHUP to one."""

    def __init__(self, config: Config, count: int) -> None:
        self._config = config
        self._count = count
        self._context = multiprocessing.get_context("fork")
        self._started: Queue[int] = self._context.Queue()
        self._workers: dict[int, _Worker] = {}
        self._stopping = False
        self._hangup_pending = False

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_hangup)
        for index in range(self._count):
            self._fork(index)
        try:
            self._wait_until_serving()
            listen = self._config.server.listen
            log.info("all workers serving", workers=self._count, listen=listen, port=split_listen(listen)[1])
            while not self._stopping:
                self._note_started()
                self._replace_dead_workers()
                time.sleep(_POLL_SECONDS)
        except WorkerStartError as error:
            log.error("a worker could not start; stopping all", error=str(error))
            self._stop_all()
            return 1
        return self._stop_all()

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _on_hangup(self, signum: int, frame: FrameType | None) -> None:
        """``systemctl reload``: one serving worker re-reads the policy file and stores a changed one.

        The others take the new version from the store at their next policy refresh, as they take
        one applied through the API: one reading of the file is enough.
        Before any worker serves, the first to serve is told: it may have read the file already.
        """
        self._hangup_pending = True
        self._pass_on_hangup()

    def _pass_on_hangup(self) -> None:
        if not self._hangup_pending:
            return
        for worker in self._workers.values():
            if worker.serving and worker.process.is_alive() and worker.process.pid is not None:
                os.kill(worker.process.pid, signal.SIGHUP)
                self._hangup_pending = False
                log.info("SIGHUP passed on", worker=worker.index)
                return

    def _fork(self, index: int) -> None:
        process = self._context.Process(
            target=_run_worker,
            args=(worker_config(self._config, index), index, self._started, os.getpid()),
            name=f"mtsg-worker-{index}",
        )
        process.start()
        self._workers[index] = _Worker(index, process)
        log.info("worker started", worker=index, pid=process.pid)

    def _note_started(self, wait: float = 0.0) -> None:
        """Mark the workers that reported serving, waiting up to ``wait`` seconds for the first report."""
        with contextlib.suppress(queue.Empty):
            index = self._started.get(timeout=wait) if wait else self._started.get_nowait()
            while True:
                self._workers[index].serving = True
                index = self._started.get_nowait()
        self._pass_on_hangup()

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while not all(worker.serving for worker in self._workers.values()):
            if self._stopping:
                return
            for worker in self._workers.values():
                if not worker.serving and not worker.process.is_alive():
                    raise WorkerStartError(f"worker {worker.index} exited with code {worker.process.exitcode}")
            if time.monotonic() > deadline:
                raise WorkerStartError(f"workers did not serve within {_START_TIMEOUT_SECONDS:g} s")
            self._note_started(wait=_POLL_SECONDS)

    def _replace_dead_workers(self) -> None:
        for worker in list(self._workers.values()):
            if worker.process.is_alive() or self._stopping:
                continue
            if not worker.serving:
                raise WorkerStartError(f"worker {worker.index} exited with code {worker.process.exitcode}")
            log.error("worker died; starting a new one", worker=worker.index, exit_code=worker.process.exitcode)
            time.sleep(_RESTART_PAUSE_SECONDS)
            self._fork(worker.index)

    def _stop_all(self) -> int:
        """SIGTERM to every worker, wait out their drain and grace, then SIGKILL; 0 when all stopped cleanly."""
        server = self._config.server
        patience = server.shutdown_drain_seconds + server.shutdown_grace_seconds + 10.0
        for worker in self._workers.values():
            if worker.process.is_alive():
                os.kill(worker.process.pid or 0, signal.SIGTERM)
        deadline = time.monotonic() + patience
        for worker in self._workers.values():
            worker.process.join(max(0.0, deadline - time.monotonic()))
        clean = True
        for worker in self._workers.values():
            if worker.process.is_alive():
                log.error("worker did not stop in time; killing it", worker=worker.index)
                worker.process.kill()
                worker.process.join()
                clean = False
            elif worker.process.exitcode not in (0, -signal.SIGTERM):
                clean = False
        log.info("all workers stopped", clean=clean)
        return 0 if clean else 1


def serve_workers(config: Config) -> int:
    """Run ``config.server.workers`` gateways on one port until SIGTERM/SIGINT; the exit status."""
    # Until the supervisor's own handler: no worker has read the policy file yet, so a reload now
    # has nothing to do, and SIGHUP's default action would end the start (a migration can take minutes).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with contextlib.ExitStack() as held:
        # The ports first: a start refused for a taken port leaves no new store behind.
        listen = held.enter_context(reserved_port(config.server.listen))
        health = config.server.health_listen
        if health:
            health = held.enter_context(reserved_port(health))
        refuse_taken_ports(
            ("serve metrics on", worker_config(config, index).server.metrics_listen)
            for index in range(config.server.workers)
            if config.server.metrics_listen
        )
        prepare_shared_state(config)
        shared = replace(config, server=replace(config.server, listen=listen, health_listen=health))
        return Supervisor(shared, config.server.workers).run()
