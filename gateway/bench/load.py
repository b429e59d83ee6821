"""Client processes that send the workload, closed-loop or open-loop, and time every call.

Each client process builds the same workload from the seed and starts at its own
offset.  A fresh request_id, nonce and collection time are appended to the
pre-serialized bytes (protobuf keeps the last value of a repeated scalar field and
merges a repeated message field), so requests are never replays yet cost the client
almost nothing to build.  In open loop, latency is measured from the moment a
request was due, not when it was sent, so a slow server cannot hide its queue.

With inventory digests each client is the SDK of its devices: it remembers the digest the
server accepted per device, sends a login's digest alone while it matches, and its list again
when the server answers FAILED_PRECONDITION (one login, timed across both calls).

Before the common start each client sends its pool's first round once, unmeasured: the
devices of a bank's returning customers logged in before the day being measured, so the
measured logins are their next ones (and a new device's round is a new device again).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc

from gateway.bench.workload import CHECK_LOGIN, LOGIN_ROUNDS, Operation, Workload, WorkloadMix
from gateway.generated.mtsg.v1 import threat_signal_service_pb2
from gateway.runtime.parent_death import end_with_parent


@dataclass(frozen=True)
class LoadPlan:
    target: str
    seed: int
    customers: int
    operations: int
    concurrency: int
    rate: float | None
    warmup_seconds: float
    seconds: float
    now: float
    # Send logins by inventory digest, as an SDK that uses them does.
    by_digest: bool = True


class StartSignal(Protocol):
    """Shared between processes: 0 until the parent sets the wall-clock start time."""

    value: float


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    # Logins sent with the digest alone, and those sent again with their list when the server did not hold it.
    digest_only: int = 0
    resent: int = 0
    # What the client's pool held (every client builds the same one from the plan).
    mix: WorkloadMix | None = None

    @classmethod
    def combined(cls, results: list[LoadResult]) -> LoadResult:
        """All clients' figures as one, latencies sorted (for percentiles)."""
        total = cls(sorted(latency for result in results for latency in result.latencies))
        total.mix = next((result.mix for result in results if result.mix is not None), None)
        for result in results:
            total.requests += result.requests
            total.digest_only += result.digest_only
            total.resent += result.resent
            for code, count in result.errors.items():
                total.errors[code] = total.errors.get(code, 0) + count
        return total


def _made_unique(operation: Operation, body: bytes, unique: str) -> bytes:
    if operation.method != CHECK_LOGIN:
        return body
    fresh = threat_signal_service_pb2.CheckLoginRequest(request_id=unique)
    fresh.telemetry.nonce = unique.rjust(16, "0")
    fresh.telemetry.collected_at.FromNanoseconds(time.time_ns())
    return body + fresh.SerializeToString()


# Calls in flight per connection: a bank's backend keeps a pool of connections, and a gateway
# with several workers receives connections (not calls) spread over them by the kernel.
CALLS_PER_CONNECTION = 4


_CHANNEL_OPTIONS = [("grpc.max_send_message_length", 8 << 20), ("grpc.use_local_subchannel_pool", 1)]


async def _register_devices(
    plan: LoadPlan, client_index: int, operations: list[Operation], held: dict[str, str]
) -> None:
    """Each login's first round once, with its list: the devices' logins before the measured day."""
    logins = [operation for operation in operations if operation.method == CHECK_LOGIN]
    queue = iter(enumerate(logins))
    async with grpc.aio.insecure_channel(plan.target, options=_CHANNEL_OPTIONS) as channel:
        call = channel.unary_unary(CHECK_LOGIN)

        async def worker() -> None:
            for index, operation in queue:
                with contextlib.suppress(grpc.aio.AioRpcError):  # a refused login registers nothing
                    await call(_made_unique(operation, operation.body, f"r{client_index}-{index}"), timeout=30)
                    form = operation.digest_form(0)
                    if form is not None:
                        held[form.device_id] = form.digest

        await asyncio.gather(*(worker() for _ in range(max(1, plan.concurrency))))


async def _drive(
    plan: LoadPlan, client_index: int, operations: list[Operation], start_wall: float, held: dict[str, str]
) -> LoadResult:
    result = LoadResult()
    connections = max(1, plan.concurrency // CALLS_PER_CONNECTION)
    async with contextlib.AsyncExitStack() as stack:
        channels = [
            await stack.enter_async_context(grpc.aio.insecure_channel(plan.target, options=_CHANNEL_OPTIONS))
            for _ in range(connections)
        ]
        methods = {op.method for op in operations}
        pools = [{method: channel.unary_unary(method) for method in methods} for channel in channels]
        cursor = len(operations) + client_index * 7919  # round 0 went in _register_devices
        started = start_wall - time.time() + time.perf_counter()
        await asyncio.sleep(max(0.0, started - time.perf_counter()))
        measure_from = started + plan.warmup_seconds
        stop_at = measure_from + plan.seconds

        async def one(due: float) -> None:
            nonlocal cursor
            operation = operations[cursor % len(operations)]
            cursor += 1
            round_number, unique = cursor // len(operations), f"b{client_index}-{cursor}-{started:.0f}"
            call = pools[cursor % connections][operation.method]
            form = operation.digest_form(round_number)
            short = form is not None and held.get(form.device_id) == form.digest
            resent = False
            try:
                if form is not None and short:
                    try:
                        await call(_made_unique(operation, form.short, unique), timeout=30)
                    except grpc.aio.AioRpcError as error:
                        if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
                            raise
                        short, resent = False, True
                        held.pop(form.device_id, None)
                if not short:
                    await call(_made_unique(operation, operation.in_round(round_number), unique), timeout=30)
                    if form is not None:
                        held[form.device_id] = form.digest
                ok = True
            except grpc.aio.AioRpcError as error:
                ok = False
                code = error.code().name
            finished = time.perf_counter()
            if due >= measure_from and finished <= stop_at:
                result.requests += 1
                result.digest_only += short
                result.resent += resent
                if ok:
                    result.latencies.append(finished - due)
                else:
                    result.errors[code] = result.errors.get(code, 0) + 1

        if plan.rate is None:

            async def worker() -> None:
                while time.perf_counter() < stop_at:
                    await one(time.perf_counter())

            await asyncio.gather(*(worker() for _ in range(plan.concurrency)))
        else:
            interval = 1.0 / plan.rate
            pending: set[asyncio.Task[None]] = set()
            due = started
            while due < stop_at:
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.ensure_future(one(due))
                pending.add(task)
                task.add_done_callback(pending.discard)
                due += interval
            await asyncio.gather(*pending)
    return result


def run_client(plan: LoadPlan, client_index: int, start: StartSignal, ready: Any, results: Any, parent: int) -> None:
    """Entry point of one client process: build the workload, say ready, wait for the common start, drive.

    It ends with ``parent``: a bench killed outright would leave it waiting for a start forever.
    """
    end_with_parent(parent)
    workload = Workload(plan.seed, plan.customers, plan.now, by_digest=plan.by_digest)
    operations = workload.operations(plan.operations, LOGIN_ROUNDS)
    held: dict[str, str] = {}  # device_id -> the inventory digest the server accepted
    asyncio.run(_register_devices(plan, client_index, operations, held))
    ready.put(client_index)
    while start.value == 0:
        time.sleep(0.01)
    result = asyncio.run(_drive(plan, client_index, operations, start.value, held))
    result.mix = workload.mix
    results.put(result)


class ClientFleet:
    """The client processes of one load run: started and built first, then let go at one common instant.

    Building a few hundred logins per process takes seconds; the common start keeps that out of
    the measured window, and the parent can measure the server (or run something beside the
    load) between ``begin`` and ``results``.
    """

    def __init__(self, plan: LoadPlan, clients: int) -> None:
        self.plan = plan
        context = multiprocessing.get_context("spawn")
        self._start = context.Value("d", 0.0)
        ready, self._outcomes = context.Queue(), context.Queue()
        self._processes = [
            context.Process(
                target=run_client,
                args=(plan, index, self._start, ready, self._outcomes, os.getpid()),
                daemon=True,
            )
            for index in range(clients)
        ]
        for process in self._processes:
            process.start()
        for _ in self._processes:
            ready.get(timeout=300)

    @property
    def rate(self) -> float:
        """Calls per second offered over all clients; 0 in closed loop."""
        return (self.plan.rate or 0.0) * len(self._processes)

    def begin(self) -> float:
        """Let every client go a moment from now; the wall-clock time they start at."""
        start_wall = time.time() + 0.2
        self._start.value = start_wall
        return start_wall

    def results(self) -> list[LoadResult]:
        """Each client's figures, once its measured window is over."""
        results: list[LoadResult] = [
            self._outcomes.get(timeout=self.plan.warmup_seconds + self.plan.seconds + 120) for _ in self._processes
        ]
        for process in self._processes:
            process.join(timeout=30)
        return results
