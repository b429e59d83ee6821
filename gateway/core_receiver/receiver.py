"""The reference receiver core banking can read: how to take mtsg's pushed commands safely.

``mtsg core-receiver`` runs it.  For every POST it

1. refuses a body it cannot measure before reading it: over 1 MiB (413), a
   Content-Length that is not one decimal number (400), Transfer-Encoding instead of
   a Content-Length (411);
2. verifies the Standard Webhooks headers: a signature by a known key and a
   timestamp within five minutes of now (401 otherwise);
3. checks the body is a command whose id is the webhook-id (400 otherwise);
4. applies the command once: the webhook-id is the primary key of the ledger, so a
   redelivery (the gateway retrying after a lost answer) or a replayed request is
   answered 200 "duplicate" and changes nothing.  Answering 2xx to a duplicate
   matters: an error would make the gateway retry it until it is dead-lettered.

Only after the ledger commit does it answer 200, so a command it acknowledged is
never lost.  For tests and drills it can be told to fail or be slow, by flags or,
when started with ``--test-controls``, at run time with ``POST /_control``; then
``GET /_applied`` shows the ledger too.  Those two endpoints are off by default:
they answer anyone who can reach the port, and the ledger names frozen customers.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.commands.webhook_signing import DEFAULT_TOLERANCE_SECONDS, WebhookVerificationError, verify_webhook

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 1024 * 1024
_LEDGER = """
CREATE TABLE IF NOT EXISTS applied (
    webhook_id   TEXT PRIMARY KEY,
    type         TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    sequence     INTEGER NOT NULL,
    received_at  REAL NOT NULL,
    -- 1 when an earlier sequence of the same customer arrived after a later one.
    out_of_order INTEGER NOT NULL,
    body         TEXT NOT NULL
);
-- The same webhook-id received again after it was applied (answered 200 "duplicate").
CREATE TABLE IF NOT EXISTS duplicates (
    id          INTEGER PRIMARY KEY,
    webhook_id  TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS refused (
    id          INTEGER PRIMARY KEY,
    webhook_id  TEXT NOT NULL,
    received_at REAL NOT NULL,
    status      INTEGER NOT NULL,
    reason      TEXT NOT NULL
);
"""


@dataclass
class Behaviour:
    """How the receiver misbehaves on purpose: the next ``fail_count`` requests (-1: all) get ``fail_status``."""

    fail_status: int = 0
    fail_count: int = 0
    delay_seconds: float = 0.0
    # Sent with 429 and 503 answers, in seconds.
    retry_after: int | None = None

    def take_failure(self) -> int:
        if not self.fail_status or self.fail_count == 0:
            return 0
        if self.fail_count > 0:
            self.fail_count -= 1
        return self.fail_status


# What ``POST /_control`` may change, with the JSON types each accepts (bool is an int in Python: refused).
_CONTROL_FIELDS: dict[str, tuple[type, ...]] = {
    "fail_status": (int,),
    "fail_count": (int,),
    "delay_seconds": (int, float),
    "retry_after": (int, type(None)),
}
MAX_DELAY_SECONDS = 60.0


def _json_document(body: bytes) -> Any:
    """Parse ``body`` as JSON; every way it can fail is a ValueError, nesting too deep included."""
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def behaviour_changes(body: bytes) -> dict[str, Any]:
    """The fields a control document sets, checked, so a typo cannot leave the receiver failing at its next request."""
    changes = _json_document(body)
    if not isinstance(changes, dict):
        raise ValueError("expected a JSON object")
    return checked_behaviour(changes)


def checked_behaviour(changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` if every field is one of Behaviour's with a sane value; the command line's flags pass here too."""
    for name, value in changes.items():
        allowed = _CONTROL_FIELDS.get(name)
        if allowed is None:
            raise ValueError(f"unknown field {name!r}; known: {', '.join(_CONTROL_FIELDS)}")
        if isinstance(value, bool) or not isinstance(value, allowed):
            raise ValueError(f"{name} has the wrong type: {type(value).__name__}")
    status = changes.get("fail_status", 0)
    if status and not 400 <= status <= 599:
        raise ValueError("fail_status must be 0 or an HTTP error status (400-599)")
    if not 0 <= changes.get("delay_seconds", 0) <= MAX_DELAY_SECONDS:
        raise ValueError(f"delay_seconds must be between 0 and {MAX_DELAY_SECONDS:g}")
    if changes.get("fail_count", 0) < -1:
        raise ValueError("fail_count must be -1 (all) or more")
    if (changes.get("retry_after") or 0) < 0:
        raise ValueError("retry_after must be 0 or more")
    return changes


class UnmeasurableBody(ValueError):
    """A request whose body length the receiver will not guess at; ``status`` is the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def declared_length(content_lengths: Sequence[str], transfer_encoding: str | None) -> int:
    """The body's length from the request's Content-Length headers, checked before a byte of it is read.

    ``rfile.read`` takes a negative length as "until the sender closes", so a "-1" would let one
    sender stream memory away; two differing lengths are how request smuggling starts; a chunked
    body read as empty would leave its chunks to be parsed as the next request.
    """
    if transfer_encoding is not None:
        raise UnmeasurableBody(411, "send the body with a Content-Length; Transfer-Encoding is not accepted")
    values = {value.strip() for value in content_lengths}
    if len(values) > 1:
        raise UnmeasurableBody(400, "conflicting Content-Length headers")
    text = values.pop() if values else "0"
    if not (text.isascii() and text.isdigit()):
        raise UnmeasurableBody(400, "Content-Length is not a decimal number of bytes")
    if int(text) > MAX_BODY_BYTES:
        raise UnmeasurableBody(413, f"body over {MAX_BODY_BYTES} bytes")
    return int(text)


def signed_command(body: bytes, webhook_id: str) -> dict[str, Any]:
    """The command in a signed body, checked to be one before the ledger takes it."""
    document = _json_document(body)
    command = document.get("data") if isinstance(document, dict) else None
    if not isinstance(command, dict):
        raise ValueError("no data object")
    if command.get("command_id") != webhook_id:
        raise ValueError("data.command_id differs from webhook-id")
    if not isinstance(command.get("customer_id"), str) or not _is_int64(command.get("sequence")):
        raise ValueError("data needs a customer_id string and a sequence integer")
    return command


def _is_int64(value: object) -> bool:
    """An int64 as the proto3 JSON mapping writes it: a decimal string (or, leniently, a JSON integer)."""
    if isinstance(value, str):
        return value.lstrip("-").isdigit() and value.isascii()
    return type(value) is int


@dataclass(frozen=True)
class ReceiverKeys:
    hmac_secrets: tuple[bytes, ...] = ()
    public_keys: tuple[Ed25519PublicKey, ...] = field(default=())


class Ledger:
    """What the receiver applied, in SQLite, so a restart keeps deduplicating."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_LEDGER)
        self._lock = threading.Lock()

    def apply(self, webhook_id: str, command: dict[str, Any], body: str, now: float) -> bool:
        """Record the command; False when this webhook-id was applied before."""
        customer_id = str(command.get("customer_id", ""))
        sequence = int(command.get("sequence", 0))
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                latest = self._db.execute(
                    "SELECT COALESCE(MAX(sequence), 0) FROM applied WHERE customer_id = ?", (customer_id,)
                ).fetchone()[0]
                cursor = self._db.execute(
                    "INSERT INTO applied VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (webhook_id) DO NOTHING",
                    (webhook_id, command.get("type", ""), customer_id, sequence, now, int(sequence < latest), body),
                )
                if cursor.rowcount == 0:
                    self._db.execute(
                        "INSERT INTO duplicates (webhook_id, received_at) VALUES (?, ?)", (webhook_id, now)
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return cursor.rowcount == 1

    def refuse(self, webhook_id: str, status: int, reason: str, now: float) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO refused (webhook_id, received_at, status, reason) VALUES (?, ?, ?, ?)",
                (webhook_id, now, status, reason),
            )

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            applied = self._db.execute(
                "SELECT webhook_id, type, customer_id, sequence, received_at, out_of_order, body"
                " FROM applied ORDER BY rowid"
            ).fetchall()
            refused = self._db.execute(
                "SELECT webhook_id, received_at, status, reason FROM refused ORDER BY id"
            ).fetchall()
            duplicates = self._db.execute("SELECT webhook_id, received_at FROM duplicates ORDER BY id").fetchall()
        return {
            "applied": [
                {
                    "webhook_id": row[0],
                    "type": row[1],
                    "customer_id": row[2],
                    "sequence": row[3],
                    "received_at": row[4],
                    "out_of_order": bool(row[5]),
                    "command": json.loads(row[6])["data"],
                }
                for row in applied
            ],
            "refused": [
                {"webhook_id": row[0], "received_at": row[1], "status": row[2], "reason": row[3]} for row in refused
            ],
            "duplicates": [{"webhook_id": row[0], "received_at": row[1]} for row in duplicates],
        }

    def close(self) -> None:
        self._db.close()


DEFAULT_IDLE_SECONDS = 30.0


class CoreReceiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        ledger: Ledger,
        keys: ReceiverKeys,
        behaviour: Behaviour,
        tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
        clock: Callable[[], float] = time.time,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
        test_controls: bool = False,
    ) -> None:
        super().__init__(address, _Handler)
        # A connection silent this long (a sender that stopped mid-request, or an idle keep-alive) is closed:
        # each holds a thread, and without a bound a few stalled senders would hold them all.
        self.idle_seconds = idle_seconds
        # What "now" is when checking a signature's timestamp (a test shares the gateway's shifted clock).
        self.clock = clock
        self.ledger = ledger
        self.keys = keys
        self.behaviour = behaviour
        self.behaviour_lock = threading.Lock()
        self.tolerance_seconds = tolerance_seconds
        # ``POST /_control`` and ``GET /_applied``: only on a test bench, since neither asks who is calling.
        self.test_controls = test_controls


class _Handler(BaseHTTPRequestHandler):
    server: CoreReceiver
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; with Nagle on, the second waits for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.idle_seconds)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: every request is logged once, as JSON, by ``_answer``."""

    def _answer(self, status: int, document: dict[str, Any], headers: Sequence[tuple[str, str]] = ()) -> None:
        # Logged before writing: if the sender is gone, the outcome (say, "applied") is still on record.
        log.info("request", method=self.command, path=self._path(), status=status, outcome=document.get("status"))
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        try:
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The sender left before its answer; what was done is logged above and, if applied, in the ledger.
            self.close_connection = True

    def _read_body(self) -> bytes | None:
        """The whole body, or None once the request was refused or its sender went away mid-body."""
        try:
            length = declared_length(self.headers.get_all("content-length", []), self.headers.get("transfer-encoding"))
        except UnmeasurableBody as refusal:
            # What follows the headers cannot be framed, so the connection cannot carry another request.
            self.close_connection = True
            self._answer(refusal.status, {"status": "refused", "reason": str(refusal)})
            return None
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            body = b""
        if len(body) < length:
            self.close_connection = True
            log.info("request", method=self.command, path=self._path(), outcome="sender gone mid-body")
            return None
        return body

    def _path(self) -> str:
        """The path only: a sender may put a token in the query, and a log must not keep it."""
        return self.path.partition("?")[0]

    def do_GET(self) -> None:
        if self.path == "/_applied" and self.server.test_controls:
            self._answer(200, {"status": "ok", **self.server.ledger.snapshot()})
        elif self.path == "/_health":
            self._answer(200, {"status": "ok"})
        else:
            self._answer(404, {"status": "not found"})

    def do_POST(self) -> None:
        body = self._read_body()
        if body is None:
            return
        if self.path == "/_control":
            if self.server.test_controls:
                self._control(body)
            else:
                self._answer(404, {"status": "not found", "reason": "start the receiver with --test-controls"})
        else:
            self._receive(body)

    def _control(self, body: bytes) -> None:
        try:
            changes = behaviour_changes(body)
        except ValueError as error:
            self._answer(400, {"status": "refused", "reason": f"bad control document: {error}"})
            return
        with self.server.behaviour_lock:
            self.server.behaviour = replace(self.server.behaviour, **changes)
        self._answer(200, {"status": "ok", "behaviour": asdict(self.server.behaviour)})

    def _receive(self, body: bytes) -> None:
        now = self.server.clock()
        headers = {name.lower(): value for name, value in self.headers.items()}
        webhook_id = headers.get("webhook-id", "")
        with self.server.behaviour_lock:
            failure = self.server.behaviour.take_failure()
            delay = self.server.behaviour.delay_seconds
            retry_after = self.server.behaviour.retry_after
        if delay:
            time.sleep(delay)
        if failure:
            extra = [("retry-after", str(retry_after))] if retry_after is not None else []
            self._answer(failure, {"status": "failing on purpose"}, extra)
            return
        try:
            verify_webhook(
                headers,
                body,
                hmac_secrets=self.server.keys.hmac_secrets,
                public_keys=self.server.keys.public_keys,
                now=now,
                tolerance_seconds=self.server.tolerance_seconds,
            )
            command = signed_command(body, webhook_id)
        except WebhookVerificationError as error:
            self._refuse(webhook_id, 401, str(error), now)
            return
        except ValueError as error:
            self._refuse(webhook_id, 400, f"not a command: {error}", now)
            return
        if self.server.ledger.apply(webhook_id, command, body.decode(), now):
            self._answer(200, {"status": "applied", "command_id": webhook_id})
        else:
            self._answer(200, {"status": "duplicate", "command_id": webhook_id})

    def _refuse(self, webhook_id: str, status: int, reason: str, now: float) -> None:
        self.server.ledger.refuse(webhook_id, status, reason, now)
        self._answer(status, {"status": "refused", "reason": reason})
