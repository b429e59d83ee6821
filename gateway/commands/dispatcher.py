"""The push: takes due deliveries from the outbox and POSTs them, signed, to core banking.

A delivery is leased before it is sent and its outcome recorded after, so a
crash between the two only means the lease runs out and the command is sent
again, with the same webhook-id, which the receiver deduplicates.  Deliveries
run concurrently across customers; the store never hands out a customer's next
command while an earlier one is still pending, which keeps per-customer order.

Logs and metric labels name an endpoint without its user, password or query: core
banking may take a token there, and logs and metrics travel further than the config.

``commands.request_timeout_seconds`` bounds a whole attempt, answer included: httpx's own
timeouts bound each read, so an endpoint sending a byte at a time could hold a delivery slot
for as long as it liked.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import httpx
import structlog

from gateway.commands.building import webhook_body
from gateway.commands.retry import RetryPolicy, parse_retry_after
from gateway.commands.webhook_signing import WebhookSigner
from gateway.observability.metrics import Metrics
from gateway.runtime.wakeup import Wakeup
from gateway.store import Store, StoreUnavailableError
from gateway.store.records import AttemptOutcome, DeliveryAttempt, DueDelivery
from gateway.urls import without_secrets

log = structlog.get_logger(__name__)

_RETRY_AFTER_STATUSES = (429, 503)
# Of an endpoint's answer body, only the start is read (and kept, in a failed attempt's error):
# a receiver, or whatever answers in its place, must not make the gateway hold gigabytes.
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class DispatchSettings:
    retry: RetryPolicy
    request_timeout_seconds: float
    lease_seconds: float
    poll_interval_seconds: float
    concurrency: int


def stranded_backlog(backlog: Mapping[str, int], endpoints: Collection[str]) -> dict[str, int]:
    """Pending deliveries of endpoints outside ``endpoints``, by name without secrets: nobody sends them."""
    stranded: dict[str, int] = {}
    for endpoint, waiting in backlog.items():
        if endpoint not in endpoints:
            name = without_secrets(endpoint)
            stranded[name] = stranded.get(name, 0) + waiting
    return stranded


class CommandDispatcher:
    def __init__(
        self,
        store: Store,
        endpoints: Sequence[str],
        signer: WebhookSigner,
        settings: DispatchSettings,
        metrics: Metrics,
        wakeup: Wakeup,
        clock: Callable[[], float] = time.time,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._store = store
        self._endpoints = tuple(endpoints)
        self._signer = signer
        self._settings = settings
        self._metrics = metrics
        self._wakeup = wakeup
        self._clock = clock
        # Leases name their holder, so an outcome reported after the lease ran out is not recorded twice.
        self.owner = f"{os.uname().nodename}:{os.getpid()}:{os.urandom(4).hex()}"
        self._client = httpx.AsyncClient(
            timeout=settings.request_timeout_seconds, follow_redirects=False, verify=verify
        )
        self._in_flight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._stranded_shown: set[str] = set()  # endpoints the stranded gauge has reported

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="command-dispatcher")

    async def stop(self) -> None:
        """Stop claiming; deliveries in flight are cancelled and their leases given back, to be sent again later.

        A cancelled POST may already have reached the receiver: the resend carries the
        same webhook-id, and the receiver deduplicates it.
        """
        tasks = [task for task in (self._task, *self._in_flight) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._client.aclose()
        try:
            released = await self._store.commands.release_leases(self.owner)
        except StoreUnavailableError as error:
            log.warning("could not give back delivery leases; they expire on their own", error=str(error))
            return
        if released:
            log.info("delivery leases given back", deliveries=released)

    async def _run(self) -> None:
        while True:
            ticket = self._wakeup.ticket()
            try:
                claimed = await self._claim()
                if not claimed:
                    await self._report_backlog()
            except StoreUnavailableError as error:
                log.error("outbox unavailable; retrying", error=str(error))
                claimed = 0
            if not claimed:
                await self._wakeup.wait(ticket, self._settings.poll_interval_seconds)

    async def _claim(self) -> int:
        room = self._settings.concurrency - len(self._in_flight)
        if room <= 0:
            return 0
        due = await self._store.commands.claim_due(
            self._endpoints, self.owner, self._clock(), self._settings.lease_seconds, room
        )
        for delivery in due:
            task = asyncio.create_task(self._deliver(delivery))
            self._in_flight.add(task)
            task.add_done_callback(self._finished)
        return len(due)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery failed unexpectedly", error=repr(task.exception()))
        # A finished delivery may unblock the same customer's next command.
        self._wakeup.notify()

    async def _report_backlog(self) -> None:
        backlog = await self._store.commands.backlog()
        # Two endpoints may differ only in what is hidden; their shown name then carries both backlogs.
        shown: dict[str, int] = {}
        for endpoint in self._endpoints:
            name = without_secrets(endpoint)
            shown[name] = shown.get(name, 0) + backlog.get(endpoint, 0)
        for name, waiting in shown.items():
            self._metrics.command_backlog.labels(endpoint=name).set(waiting)
        # An endpoint reported before and moved away since goes back to 0.
        stranded = {**dict.fromkeys(self._stranded_shown, 0), **stranded_backlog(backlog, self._endpoints)}
        for name, waiting in stranded.items():
            self._metrics.command_stranded.labels(endpoint=name).set(waiting)
        self._stranded_shown = set(stranded)

    async def _deliver(self, delivery: DueDelivery) -> None:
        command = delivery.command
        attempt_number = delivery.attempts + 1
        body = webhook_body(command)
        started = self._clock()
        headers = {
            "content-type": "application/json",
            "user-agent": "mtsg-command-push/1",
            **self._signer.headers(command.command_id, int(started), body),
        }
        status: int | None = None
        retry_after: float | None = None
        answer = bytearray()
        error = ""
        limit = self._settings.request_timeout_seconds
        try:
            async with asyncio.timeout(limit):
                async with self._client.stream("POST", delivery.endpoint, content=body, headers=headers) as response:
                    status = response.status_code
                    if status in _RETRY_AFTER_STATUSES:
                        retry_after = parse_retry_after(response.headers.get("retry-after"), started)
                    async for chunk in response.aiter_bytes():
                        answer += chunk
                        if len(answer) >= MAX_ANSWER_BYTES:
                            break
        except TimeoutError:
            error = f"no complete answer within {limit:g} s (commands.request_timeout_seconds)"
        except httpx.HTTPError as failure:
            # Some say nothing (an endpoint that refused the TLS handshake closes without a word).
            error = f"{type(failure).__name__}: {str(failure) or 'the endpoint closed the connection'}"[:300]
        if status is not None:  # the status decides, even when the body never finished arriving
            text = answer[:200].decode("utf-8", "replace")
            error = "" if 200 <= status < 300 else f"HTTP {status}: {text}"
        finished = self._clock()
        attempt = self._outcome(delivery.endpoint, attempt_number, started, finished, status, error, retry_after)
        try:
            recorded = await self._store.commands.record_attempt(command.cursor, attempt, self.owner)
        except StoreUnavailableError as failure:
            log.error(
                "outbox unavailable: the attempt's outcome is not recorded; the command is sent again when"
                " its lease runs out",
                command_id=command.command_id,
                outcome=attempt.outcome,
                error=str(failure),
            )
            return
        if not recorded:
            log.warning("lease expired before the outcome was recorded", command_id=command.command_id)
            return
        shown = without_secrets(delivery.endpoint)
        self._metrics.delivery_attempts.labels(endpoint=shown, outcome=attempt.outcome).inc()
        self._log(delivery, attempt, shown)
        if attempt.outcome is AttemptOutcome.DELIVERED:
            self._metrics.delivery_latency.labels(endpoint=shown).observe(finished - command.created_at)
        elif attempt.outcome is AttemptOutcome.DEAD:
            self._metrics.dead_letters.labels(endpoint=shown).inc()

    def _outcome(
        self,
        endpoint: str,
        attempt: int,
        started: float,
        finished: float,
        status: int | None,
        error: str,
        retry_after: float | None,
    ) -> DeliveryAttempt:
        duration_ms = (finished - started) * 1000
        if status is not None and 200 <= status < 300:
            outcome, next_at = AttemptOutcome.DELIVERED, 0.0
        elif status == 410:
            # Gone: the receiver asks us to stop.  The delivery stays pending for when an operator re-enables it.
            outcome, next_at = AttemptOutcome.GONE, finished
        elif self._settings.retry.exhausted(attempt):
            outcome, next_at = AttemptOutcome.DEAD, 0.0
        else:
            outcome, next_at = AttemptOutcome.RETRY, finished + self._settings.retry.delay(attempt, retry_after)
        return DeliveryAttempt(endpoint, attempt, started, duration_ms, status, outcome, error, next_at)

    def _log(self, delivery: DueDelivery, attempt: DeliveryAttempt, shown_endpoint: str) -> None:
        fields = {
            "command_id": delivery.command.command_id,
            "endpoint": shown_endpoint,
            "attempt": attempt.attempt,
            "status": attempt.status,
            "duration_ms": round(attempt.duration_ms, 1),
        }
        if attempt.outcome is AttemptOutcome.DELIVERED:
            log.info("command delivered", **fields)
        elif attempt.outcome is AttemptOutcome.RETRY:
            retry_at = round(attempt.next_attempt_at, 3)
            log.warning("command delivery failed; will retry", error=attempt.error, retry_at=retry_at, **fields)
        elif attempt.outcome is AttemptOutcome.DEAD:
            log.error("command dead-lettered after the last attempt", error=attempt.error, **fields)
        else:
            log.error("endpoint answered 410 Gone and is disabled", **fields)
