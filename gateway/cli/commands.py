"""``mtsg commands ...`` for operators and ``mtsg core-receiver``, the reference peer.

Like the registry commands these open the gateway's store directly; a running
gateway's dispatcher sees an UNFREEZE or a redelivery at its next poll.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import structlog
from google.protobuf import json_format

from blocklists.formats import format_timestamp
from gateway.cli import support as cli_support
from gateway.cli.support import (
    CommandError,
    ConfigLoader,
    StoreCommands,
    StoreHandler,
    actor,
    add_actor_flag,
    run_async,
    with_store,
)
from gateway.commands.building import CUSTOMER_ID, to_proto, unfreeze_command
from gateway.commands.endpoints import installation_endpoints
from gateway.commands.webhook_signing import (
    WebhookKeyError,
    generate_hmac_secret,
    generate_key_pair,
    keys_in_file,
    parse_hmac_secret,
    parse_public_key,
)
from gateway.generated.mtsg.v1 import common_pb2
from gateway.store import Store, StoreUnavailableError
from gateway.store.outbox import DELIVERY_STATES
from gateway.store.records import CommandOverview, CommandQuery, DeliveryStatus, StoredCommand
from gateway.urls import without_secrets
from signals.wording import counted

_EXPECTED = (StoreUnavailableError, WebhookKeyError, OSError)
# --scope names from the contract's enum: transfers, cash_withdrawal, card_loans.
_SCOPES = {name.removeprefix("FREEZE_SCOPE_").lower(): value for name, value in common_pb2.FreezeScope.items() if value}


def _summary_line(overview: CommandOverview) -> str:
    command = overview.command
    deliveries = ", ".join(
        f"{delivery.endpoint} {delivery.state}"
        + (f" after {delivery.attempts} attempts" if delivery.attempts != 1 else "")
        for delivery in overview.deliveries
    )
    return (
        f"#{command.cursor}  {command.command_id}  {command.type:<16} {command.customer_id} seq {command.sequence}"
        f"  {format_timestamp(command.created_at)}  {deliveries or 'stream only'}"
    )


def _command_text(stored: StoredCommand) -> list[str]:
    command = to_proto(stored)
    lines = [
        f"{stored.command_id}  {stored.type}  cursor {stored.cursor}",
        f"  customer {stored.customer_id}, sequence {stored.sequence}, created {format_timestamp(stored.created_at)}"
        f" by {stored.issued_by}",
    ]
    if stored.verdict_id:
        lines.append(f"  verdict {stored.verdict_id}, scenario {command.scenario_id or '-'}")
    if command.freeze_scopes:
        names = ", ".join(
            common_pb2.FreezeScope.Name(scope).removeprefix("FREEZE_SCOPE_") for scope in command.freeze_scopes
        )
        lines.append(f"  scopes: {names}")
    if command.step_up_method:
        lines.append(
            f"  step-up: {common_pb2.StepUpMethod.Name(command.step_up_method).removeprefix('STEP_UP_METHOD_')}"
        )
    for reason in command.reasons:
        lines.append(f"  reason {reason.code}: {reason.message}")
    return lines


def _commands_list(options: argparse.Namespace, load: ConfigLoader) -> int:
    async def work(store: Store) -> int:
        query = CommandQuery(
            limit=options.limit,
            before=options.before,
            customer_id=options.customer or "",
            state=options.state or "",
        )
        rows = await store.commands.overview(query)
        for overview in rows:
            print(_summary_line(overview))
        if not rows:
            print("no commands", file=sys.stderr)
        return 0

    return run_async("commands list", lambda: with_store(load(options), work), _EXPECTED)


def _commands_show(options: argparse.Namespace, load: ConfigLoader) -> int:
    async def work(store: Store) -> int:
        stored = await store.commands.get(options.command_id)
        if stored is None:
            raise CommandError(f"no command {options.command_id}")
        if options.json:
            document = json_format.MessageToDict(to_proto(stored), preserving_proto_field_name=True)
            print(json.dumps(document, indent=2, sort_keys=True))
            return 0
        print("\n".join(_command_text(stored)))
        for delivery in await store.commands.deliveries(stored.cursor):
            when = f", delivered {format_timestamp(delivery.delivered_at)}" if delivery.delivered_at else ""
            retry = (
                f", next attempt {format_timestamp(delivery.next_attempt_at)}"
                if delivery.state == DeliveryStatus.PENDING
                else ""
            )
            print(f"  delivery to {delivery.endpoint}: {delivery.state}, {delivery.attempts} attempts{when}{retry}")
        # Numbered per endpoint over the command's whole life: a redelivery starts a fresh retry budget,
        # but the operator still sees every attempt ever made.
        numbers: Counter[str] = Counter()
        for attempt in await store.commands.attempts(stored.cursor):
            numbers[attempt.endpoint] += 1
            status = attempt.status if attempt.status is not None else "no answer"
            print(
                f"    {attempt.endpoint} attempt {numbers[attempt.endpoint]} {format_timestamp(attempt.at)}"
                f" -> {status} ({attempt.outcome},"
                f" {attempt.duration_ms:.0f} ms) {attempt.error}".rstrip()
            )
        return 0

    return run_async("commands show", lambda: with_store(load(options), work), _EXPECTED)


def _commands_redeliver(options: argparse.Namespace, load: ConfigLoader) -> int:
    config = load(options)

    async def work(store: Store) -> int:
        endpoints = tuple(options.endpoint) or await installation_endpoints(
            store, config.command_endpoints, time.time()
        )
        if not endpoints:
            raise CommandError(
                "no endpoint: no gateway of this installation pushes commands to one; pass --endpoint URL"
            )
        if await store.commands.get(options.command_id) is None:
            raise CommandError(f"no command {options.command_id}")
        queued = await store.commands.redeliver(options.command_id, endpoints, time.time(), actor(options))
        print(f"queued {options.command_id} again for {counted(queued, 'endpoint')}: {', '.join(endpoints)}")
        return 0

    return run_async("commands redeliver", lambda: with_store(config, work), _EXPECTED)


def _commands_unfreeze(options: argparse.Namespace, load: ConfigLoader) -> int:
    config = load(options)

    async def work(store: Store) -> int:
        if not CUSTOMER_ID.fullmatch(options.customer_id):
            raise CommandError("CUSTOMER must be 1 to 128 letters, digits or . _ : @ -")
        unknown = [scope for scope in options.scope if scope not in _SCOPES]
        if unknown:
            raise CommandError(f"unknown --scope {unknown[0]!r}; choose from {', '.join(_SCOPES)}")
        who = actor(options)
        now = time.time()
        endpoints = await installation_endpoints(store, config.command_endpoints, now)
        command = unfreeze_command(
            options.customer_id, options.reason, [_SCOPES[scope] for scope in options.scope], who, now, endpoints
        )
        stored = await store.commands.issue(command, detail=options.reason)
        print("\n".join(_command_text(stored)))
        where = ", ".join(without_secrets(endpoint) for endpoint in endpoints)
        print(f"  queued for {counted(len(endpoints), 'endpoint')}: {where}" if endpoints else "  stream only")
        if not endpoints and not await store.commands.consumers():
            print(
                "warning: no gateway of this installation pushes commands to an endpoint and no stream consumer"
                " has subscribed: nothing will receive this command until a consumer subscribes"
                " (CommandFeedService.Subscribe) or it is queued for an endpoint"
                " (`mtsg commands redeliver COMMAND_ID --endpoint URL`)",
                file=sys.stderr,
            )
        return 0

    return run_async("commands unfreeze", lambda: with_store(config, work), _EXPECTED)


def _commands_status(options: argparse.Namespace, load: ConfigLoader) -> int:
    config = load(options)

    async def work(store: Store) -> int:
        counts = await store.commands.counts()
        disabled = await store.commands.disabled_endpoints()
        endpoints = sorted({*config.command_endpoints, *(endpoint for endpoint, _ in counts), *disabled})
        print(f"feed: last cursor {await store.commands.last_cursor()}")
        for endpoint in endpoints:
            figures = ", ".join(f"{counts.get((endpoint, state), 0)} {state}" for state in DELIVERY_STATES)
            flags = []
            if endpoint not in config.command_endpoints:
                flags.append("not configured")
            if endpoint in disabled:
                at, reason = disabled[endpoint]
                flags.append(f"DISABLED since {format_timestamp(at)}: {reason}")
            print(f"{endpoint}: {figures}" + (f"  [{'; '.join(flags)}]" if flags else ""))
        if not endpoints:
            print("no push endpoints configured (commands.endpoint_urls); commands go to the gRPC stream only")
        return 0

    return run_async("commands status", lambda: with_store(config, work), _EXPECTED)


def _commands_enable(options: argparse.Namespace, load: ConfigLoader) -> int:
    async def work(store: Store) -> int:
        if not await store.commands.enable_endpoint(options.endpoint, time.time(), actor(options)):
            raise CommandError(f"{options.endpoint} is not disabled")
        print(f"{options.endpoint} enabled; its pending deliveries go out at the dispatcher's next poll")
        return 0

    return run_async("commands enable-endpoint", lambda: with_store(load(options), work), _EXPECTED)


def _commands_move(options: argparse.Namespace, load: ConfigLoader) -> int:
    config = load(options)
    old, new = options.old, options.new

    async def work(store: Store) -> int:
        if old == new:
            raise CommandError("OLD and NEW are the same endpoint")
        if new not in config.command_endpoints:
            raise CommandError(
                f"{new} is not in commands.endpoint_urls of this configuration: nothing would send what is moved to it"
            )
        move = await store.commands.move_pending(old, new, time.time(), actor(options))
        if move.moved + move.kept + move.sending == 0:
            raise CommandError(f"no pending deliveries to {old} (`mtsg commands status` lists the endpoints)")
        print(f"moved {move.moved} pending deliveries from {old} to {new}; they go out at the dispatcher's next poll")
        if move.kept:
            print(f"{move.kept} of those commands already had a delivery to {new}, which stays as it is")
        if move.sending:
            print(
                f"{move.sending} deliveries are being attempted at {old} by a gateway that still has it configured,"
                f" and stay there so that they are not sent twice; run this again after"
                f" {format_timestamp(move.sending_until)} to move those still pending",
                file=sys.stderr,
            )
            return 3
        return 0

    return run_async("commands move-endpoint", lambda: with_store(config, work), _EXPECTED)


def _commands_consumers(options: argparse.Namespace, load: ConfigLoader) -> int:
    async def work(store: Store) -> int:
        consumers = await store.commands.consumers()
        last = await store.commands.last_cursor()
        for consumer_id, cursor, at in consumers:
            print(
                f"{consumer_id}: acknowledged cursor {cursor} ({last - cursor} behind), last ack {format_timestamp(at)}"
            )
        if not consumers:
            print("no stream consumer has acknowledged a command (CommandFeedService.Ack)")
        return 0

    return run_async("commands consumers", lambda: with_store(load(options), work), _EXPECTED)


def _commands_forget_consumer(options: argparse.Namespace, load: ConfigLoader) -> int:
    async def work(store: Store) -> int:
        if not await store.commands.forget_consumer(options.consumer_id, time.time(), actor(options), options.reason):
            raise CommandError(f"no consumer {options.consumer_id} (`mtsg commands consumers` lists them)")
        print(f"forgot {options.consumer_id}: retention no longer waits for its acknowledgements")
        return 0

    return run_async("commands forget-consumer", lambda: with_store(load(options), work), _EXPECTED)


def _keys_generate(options: argparse.Namespace) -> int:
    directory: Path = options.dir
    paths = {name: directory / name for name in ("webhook-hmac.secret", "webhook-ed25519.key", "webhook-ed25519.pub")}
    private, public = generate_key_pair()
    failed = cli_support.write_key_files(
        "commands keys generate",
        [
            (paths["webhook-hmac.secret"], f"{generate_hmac_secret()}\n".encode(), 0o600),
            (paths["webhook-ed25519.key"], f"{private}\n".encode(), 0o600),
            (paths["webhook-ed25519.pub"], f"{public}\n".encode(), 0o644),
        ],
    )
    if failed:
        return failed
    print(f"HMAC secret      {paths['webhook-hmac.secret']}  (commands.hmac_secret_file; share with core banking)")
    print(f"Ed25519 private  {paths['webhook-ed25519.key']}  (commands.ed25519_key_file; keep it on the gateway)")
    print(f"Ed25519 public   {paths['webhook-ed25519.pub']}  (give it to core banking to verify v1a signatures)")
    return 0


_MAX_PORT = 65535
_MAX_TOLERANCE_SECONDS = 86400.0


def _core_receiver(options: argparse.Namespace) -> int:
    from gateway.core_receiver.receiver import Behaviour, CoreReceiver, Ledger, ReceiverKeys, checked_behaviour
    from gateway.observability.logging_setup import configure_logging

    configure_logging("info")
    try:
        keys = ReceiverKeys(
            tuple(key for path in options.hmac_secret_file for key in keys_in_file(path, parse_hmac_secret)),
            tuple(key for path in options.public_key_file for key in keys_in_file(path, parse_public_key)),
        )
        if not keys.hmac_secrets and not keys.public_keys:
            raise CommandError("give --hmac-secret-file and/or --public-key-file: the receiver verifies every request")
        host, _, port = options.listen.rpartition(":")
        if not host or not (port.isascii() and port.isdigit()) or int(port) > _MAX_PORT:
            raise CommandError(f"--listen: expected HOST:PORT with a port up to {_MAX_PORT}, got {options.listen!r}")
        if options.tolerance_seconds > _MAX_TOLERANCE_SECONDS:
            raise CommandError(
                f"--tolerance-seconds: at most {_MAX_TOLERANCE_SECONDS:g} (a longer one lets old requests be replayed)"
            )
        try:
            behaviour = Behaviour(
                **checked_behaviour(
                    {
                        "fail_status": options.fail_status,
                        "fail_count": options.fail_count,
                        "delay_seconds": options.delay_seconds,
                        "retry_after": options.retry_after,
                    }
                )
            )
        except ValueError as error:
            raise CommandError("--" + str(error).replace("_", "-")) from None
        ledger = Ledger(options.data_dir / "receiver.sqlite3")
        server = CoreReceiver(
            (host, int(port)), ledger, keys, behaviour, options.tolerance_seconds, test_controls=options.test_controls
        )
    except CommandError as error:
        print(f"mtsg core-receiver: {error}", file=sys.stderr)
        return 2
    except (WebhookKeyError, OSError) as error:
        print(f"mtsg core-receiver: {error}", file=sys.stderr)
        return 1

    def stop(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    structlog.get_logger(__name__).info(
        "receiver listening", host=host, port=server.server_address[1], ledger=str(options.data_dir)
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        ledger.close()
    return 0


def add_command_commands(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    add_config_flags: Any,
    load: ConfigLoader,
) -> None:
    """Attach ``commands`` and ``core-receiver`` to the ``mtsg`` parser."""
    group = commands.add_parser("commands", help="commands to core banking: the outbox and its deliveries")
    sub = group.add_subparsers(dest="commands_command", required=True, metavar="SUBCOMMAND")

    store = StoreCommands(add_config_flags, load)

    def store_command(name: str, text: str, handler: StoreHandler) -> argparse.ArgumentParser:
        return store.add(sub, name, text, handler)

    listing = store_command("list", "newest commands first, with their delivery state", _commands_list)
    listing.add_argument("--state", choices=DELIVERY_STATES, help="only commands with a delivery in this state")
    listing.add_argument("--customer", type=cli_support.given_name, help="only this customer's commands")
    listing.add_argument("--limit", type=cli_support.positive_count, default=50, help="at most this many (default 50)")
    listing.add_argument(
        "--before", type=cli_support.positive_count, default=0, metavar="CURSOR", help="older than this cursor (paging)"
    )

    show = store_command("show", "one command, its deliveries and every attempt", _commands_show)
    show.add_argument("command_id")
    show.add_argument("--json", action="store_true", help="the command as sent (proto JSON)")

    redeliver = store_command("redeliver", "send a command again (after a dead letter, say)", _commands_redeliver)
    redeliver.add_argument("command_id")
    redeliver.add_argument("--endpoint", action="append", default=[], help="only this URL (repeatable)")
    add_actor_flag(redeliver)

    unfreeze = store_command("unfreeze", "lift a customer's freeze after verifying them", _commands_unfreeze)
    unfreeze.add_argument("customer_id", metavar="CUSTOMER")
    unfreeze.add_argument(
        "--reason", required=True, type=cli_support.stated_reason, help="how the customer was verified (required)"
    )
    unfreeze.add_argument(
        "--scope", action="append", default=[], help=f"{', '.join(_SCOPES)} (repeatable; default all)"
    )
    add_actor_flag(unfreeze)

    store_command("status", "deliveries per endpoint and state; disabled endpoints", _commands_status)

    enable = store_command("enable-endpoint", "send to an endpoint again after it answered 410", _commands_enable)
    enable.add_argument("endpoint", metavar="URL")
    add_actor_flag(enable)

    move = store_command(
        "move-endpoint",
        "hand an old endpoint's pending deliveries to a configured one (its URL changed)",
        _commands_move,
    )
    move.add_argument("old", metavar="OLD_URL", type=cli_support.given_name)
    move.add_argument("new", metavar="NEW_URL", type=cli_support.given_name)
    add_actor_flag(move)

    store_command("consumers", "stream consumers: acknowledged cursor, how far behind, last ack", _commands_consumers)
    forget = store_command(
        "forget-consumer", "stop keeping commands for a stream consumer that no longer reads", _commands_forget_consumer
    )
    forget.add_argument("consumer_id", metavar="CONSUMER", type=cli_support.given_name)
    forget.add_argument(
        "--reason", required=True, type=cli_support.stated_reason, help="why it no longer reads (required)"
    )
    add_actor_flag(forget)

    keys = sub.add_parser("keys", help="Standard Webhooks signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="SUBCOMMAND")
    generate = keys_sub.add_parser("generate", help="make an HMAC secret and an Ed25519 key pair")
    generate.add_argument("--dir", type=Path, default=Path("."), help="where to write them (default .)")
    generate.set_defaults(run=_keys_generate)

    receiver = commands.add_parser("core-receiver", help="run the reference core-banking receiver of pushed commands")
    receiver.add_argument("--listen", default="127.0.0.1:8700", help="HOST:PORT (default 127.0.0.1:8700; port 0: any)")
    receiver.add_argument("--data-dir", type=Path, default=Path("core-receiver-data"), help="where the ledger lives")
    receiver.add_argument("--hmac-secret-file", type=Path, action="append", default=[], help="whsec_ secrets (v1)")
    receiver.add_argument("--public-key-file", type=Path, action="append", default=[], help="whpk_ keys (v1a)")
    # A finite number above 0: nan or inf would let a request of any age through (a replay), 0 or less none.
    receiver.add_argument(
        "--tolerance-seconds",
        type=cli_support.positive_number,
        default=300.0,
        help=f"timestamp tolerance (default 300, at most {_MAX_TOLERANCE_SECONDS:g})",
    )
    receiver.add_argument("--fail-status", type=int, default=0, help="answer this HTTP status instead of applying")
    receiver.add_argument("--fail-count", type=int, default=0, help="for this many requests (-1: all)")
    receiver.add_argument("--delay-seconds", type=float, default=0.0, help="wait this long before answering")
    receiver.add_argument("--retry-after", type=int, help="Retry-After seconds on failing 429/503 answers")
    receiver.add_argument(
        "--test-controls",
        action="store_true",
        help="serve POST /_control and GET /_applied (unauthenticated: for a test bench only)",
    )
    receiver.set_defaults(run=_core_receiver)
