"""``mtsg purge``: forget now what ``[retention]`` says is too old, with progress; ``--dry-run`` only counts."""

from __future__ import annotations

import argparse
import sys
import time

from gateway.cli.support import (
    AddFlags,
    ConfigLoader,
    StoreCommands,
    run_async,
    table_progress,
    with_store,
)
from gateway.privacy.retention_job import retention_policy
from gateway.store import Store, StoreUnavailableError
from gateway.store.retention import DEFAULT_BATCH_SIZE, RetentionPolicy


def _batch_size(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) == 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def _ages(policy: RetentionPolicy) -> str:
    ages = {
        "device history": policy.device_history_days,
        "verdicts": policy.verdicts_days,
        "commands": policy.commands_days,
        "phone changes": policy.phone_changes_days,
    }
    kept = ", ".join(f"{name} {days:g} days" if days else f"{name} kept for ever" for name, days in ages.items())
    return f"retention: login nonces {policy.nonce_seconds:g} s, {kept}"


def _purge(options: argparse.Namespace, load: ConfigLoader) -> int:
    config = load(options)
    policy = retention_policy(config)

    async def work(store: Store) -> int:
        print(_ages(policy), file=sys.stderr)
        now = time.time()
        if options.dry_run:
            counts = await store.count_purgeable(policy, now)
            verb = "would be removed"
        else:
            counts = await store.purge(policy, now, batch_size=options.batch_size, progress=table_progress("removed"))
            verb = "removed"
        for table, count in counts.items():
            print(f"{table:<22} {count:>12,} {verb}")
        print(f"{sum(counts.values()):,} rows {verb} in {len(counts)} tables")
        return 0

    return run_async("purge", lambda: with_store(config, work), (OSError, StoreUnavailableError))


def add_purge_command(commands: argparse._SubParsersAction, add_config_flags: AddFlags, load: ConfigLoader) -> None:  # type: ignore[type-arg]
    configured = StoreCommands(add_config_flags, load)
    purge = commands.add_parser(
        "purge", help="remove device history, verdicts, commands and phone changes past their [retention] age"
    )
    purge.add_argument("--dry-run", action="store_true", help="only count what would be removed")
    purge.add_argument(
        "--batch-size",
        type=_batch_size,
        default=DEFAULT_BATCH_SIZE,
        help="rows per transaction (default %(default)s); a login waits for one batch at most",
    )
    configured.bind(purge, _purge)
