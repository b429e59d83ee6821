"""``mtsg privacy keys|rotate-key|find-number``: the phone-hash key ring and what is stored under it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.cli.support import (
    AddFlags,
    CommandError,
    ConfigLoader,
    StoreCommands,
    iso_time,
    run_async,
    with_store,
)
from gateway.config import Config
from gateway.privacy.phone_hash import (
    PhoneHashKeyError,
    PhoneHashKeys,
    PhoneNumberError,
    normalize_phone_number,
    read_keys,
    rotate_keys,
)
from gateway.store import Store, StoreUnavailableError

_EXPECTED = (OSError, StoreUnavailableError, PhoneHashKeyError)


def _ring(config: Config) -> tuple[Path, PhoneHashKeys]:
    path = config.phone_hash_key_path
    if not path.exists():
        raise CommandError(f"no phone-hash key file at {path}: a gateway creates it at its first start")
    return path, read_keys(path)


def _keys(options: argparse.Namespace, load: ConfigLoader) -> int:
    config = load(options)

    async def work(store: Store) -> int:
        path, ring = _ring(config)
        use = await store.phone_hash_key_use()
        print(f"key file: {path}")
        for position, hasher in enumerate(ring.all):
            role = "current (hashes new numbers)" if position == 0 else "previous"
            rows = use.get(hasher.key_id, 0)
            droppable = "; no row uses it: it may leave the file" if position and not rows else ""
            print(f"  {hasher.key_id}  {role:<28} {rows:>10,} phone changes{droppable}")
        lost = {key_id: rows for key_id, rows in use.items() if key_id not in {h.key_id for h in ring.all}}
        for key_id, rows in lost.items():
            print(f"  {key_id}  NOT IN THE FILE             {rows:>10,} phone changes cannot be matched any more")
        return 1 if lost else 0

    return run_async("privacy keys", lambda: with_store(config, work), _EXPECTED)


def _rotate(options: argparse.Namespace, load: ConfigLoader) -> int:
    config = load(options)

    async def work() -> int:
        path, _ = _ring(config)
        before, after = rotate_keys(path)
        print(
            f"new current key {after.current.key_id}; kept {len(before.all)} previous: "
            + ", ".join(hasher.key_id for hasher in before.all)
        )
        print(
            "Restart every gateway (a rolling restart is fine: each hash is stored with its key id) so new"
            " numbers are hashed with the new key. Log pseudonyms change with the current key.",
            file=sys.stderr,
        )
        return 0

    return run_async("privacy rotate-key", work, _EXPECTED)


def _find(options: argparse.Namespace, load: ConfigLoader) -> int:
    config = load(options)
    try:
        number = normalize_phone_number(options.number)
    except PhoneNumberError as error:
        print(f"mtsg privacy find-number: {error}", file=sys.stderr)
        return 2

    async def work(store: Store) -> int:
        _, ring = _ring(config)
        matches = await store.find_phone_changes(ring.hashes(number))
        if not matches:
            print(f"no stored phone-number change involves this number (searched under {len(ring.all)} keys)")
            return 0
        print(f"{'changed at':<26} {'customer':<24} {'side':<9} {'kind':<14} {'source':<20} key")
        for match in matches:
            print(
                f"{iso_time(match.changed_at):<26} {match.customer_id:<24} {match.side:<9} {match.kind:<14}"
                f" {match.source:<20} {match.hash_key_id}"
            )
        return 0

    return run_async("privacy find-number", lambda: with_store(config, work), _EXPECTED)


def add_privacy_commands(commands: argparse._SubParsersAction, add_config_flags: AddFlags, load: ConfigLoader) -> None:  # type: ignore[type-arg]
    configured = StoreCommands(add_config_flags, load)
    privacy = commands.add_parser("privacy", help="the phone-hash key ring: keys, rotate-key, find-number")
    sub = privacy.add_subparsers(dest="privacy_command", required=True, metavar="SUBCOMMAND")
    keys = sub.add_parser(
        "keys", help="the keys in the ring and how many stored changes each hashed (exit 1: a key was lost)"
    )
    configured.bind(keys, _keys)
    rotate = sub.add_parser("rotate-key", help="put a fresh key first in the ring, keeping the others")
    configured.bind(rotate, _rotate)
    find = sub.add_parser("find-number", help="stored phone-number changes that involved a number, under every key")
    find.add_argument("number", help="E.164, e.g. +821012345678")
    configured.bind(find, _find)
