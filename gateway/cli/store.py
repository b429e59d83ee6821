"""``mtsg migrate`` and ``mtsg store copy``: schema upgrades and moving an installation between backends."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from gateway.cli.support import (
    AddFlags,
    CommandError,
    ConfigLoader,
    StoreCommands,
    run_async,
    table_progress,
)
from gateway.observability.logging_setup import configure_logging
from gateway.store import StoreUnavailableError, newer_migrations, open_database, schema_version_or_zero
from gateway.store.copy import CopyError, TableCopy, check_source, copy_store
from gateway.store.database import redact
from gateway.store.migrate import load_migrations
from signals.wording import counted


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _migrate(options: argparse.Namespace, load: ConfigLoader) -> int:
    config = load(options)
    url = options.url if options.url is not None else config.store.url

    async def work() -> int:
        configure_logging("warning")  # this command reports its own progress
        db = await open_database(url, config.data_dir, 1)
        try:
            shipped = load_migrations(db.backend)
            before = await schema_version_or_zero(db)
            where = redact(url) if url else str(config.data_dir / "mtsg.sqlite3")
            print(f"{db.backend} {where}: schema version {before}, this mtsg ships {len(shipped)}")
            pending = [f"{m.version:04d}_{m.name}" for m in shipped if m.version > before]
            unknown = await newer_migrations(db) if before > len(shipped) else []
            if unknown:
                print(
                    f"newer than this mtsg: a later release applied {', '.join(unknown)}; nothing to apply."
                    " Run that release, or check that its release notes let this one run on them."
                )
                return 4 if options.status else 0
            if options.status:
                print("up to date" if not pending else f"pending: {', '.join(pending)}")
                return 0 if not pending else 3
            started = time.monotonic()
            applied = await db.migrate(lambda name: _say(f"applying {name} …"))
            after = await db.schema_version()
            took = time.monotonic() - started
            if applied:
                print(f"applied {counted(len(applied), 'migration')} in {took:.2f} s; schema version {after}")
            elif after > before:
                print(f"up to date: another process migrated it to schema version {after} meanwhile")
            else:
                print("up to date")
            return 0
        finally:
            await db.close()

    return run_async("migrate", work, (StoreUnavailableError,))


def _copy(options: argparse.Namespace, load: ConfigLoader) -> int:
    config = load(options)

    async def work() -> int:
        configure_logging("warning")
        if options.source == options.target:
            raise CommandError("--from and --to are the same database")
        for url, flag in ((options.source, "--from"), (options.target, "--to")):
            if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
                raise CommandError(f"{flag} must be sqlite:///PATH or postgresql://…, got {url[:40]!r}")
        if options.source.startswith("sqlite:///") and not Path(options.source.removeprefix("sqlite:///")).is_file():
            raise CommandError(f"--from: no SQLite database at {options.source.removeprefix('sqlite:///')}")
        source = await open_database(options.source, config.data_dir, 2)
        try:
            await check_source(source)  # before the target is made: a wrong --from leaves nothing behind
            target = await open_database(options.target, config.data_dir, 2)
            try:
                _say(f"copying {redact(options.source)} -> {redact(options.target)}")
                applied = await target.migrate(lambda name: _say(f"target: applying {name} …"))
                if applied:
                    _say(f"target: schema created ({len(applied)} migrations)")
                results = await copy_store(source, target, table_progress("copied"))
            finally:
                await target.close()
        finally:
            await source.close()
        return _report(results)

    return run_async("store copy", work, (StoreUnavailableError, CopyError))


def _report(results: list[TableCopy]) -> int:
    print(f"{'table':<22} {'source rows':>12} {'target rows':>12}  {'sha256 (source)':<18} {'sha256 (target)':<18}")
    for result in results:
        mark = "ok" if result.matches else "MISMATCH"
        print(
            f"{result.table:<22} {result.source_rows:>12,} {result.target_rows:>12,}"
            f"  {result.source_checksum[:16]:<18} {result.target_checksum[:16]:<18} {mark}"
        )
    bad = [result.table for result in results if not result.matches]
    total = sum(result.target_rows for result in results)
    if bad:
        print(f"mtsg store copy: {', '.join(bad)} differ after the copy; do not switch over", file=sys.stderr)
        return 1
    print(f"copied {len(results)} tables, {total:,} rows; every count and checksum matches")
    return 0


def add_store_commands(commands: argparse._SubParsersAction, add_config_flags: AddFlags, load: ConfigLoader) -> None:  # type: ignore[type-arg]
    configured = StoreCommands(add_config_flags, load)
    """Attach ``migrate`` and ``store copy`` to the ``mtsg`` parser."""
    migrate = commands.add_parser(
        "migrate", help="apply the schema migrations this mtsg ships (safe while other replicas start)"
    )
    migrate.add_argument("--url", help="the database (default: store.url, or SQLite in the data dir)")
    migrate.add_argument("--status", action="store_true", help="only report; exit 3 when migrations are pending")
    configured.bind(migrate, _migrate)

    store = commands.add_parser("store", help="the store itself: copy an installation to another backend")
    sub = store.add_subparsers(dest="store_command", required=True, metavar="SUBCOMMAND")
    copy = sub.add_parser("copy", help="copy every table into a fresh database, then compare counts and checksums")
    copy.add_argument("--from", dest="source", required=True, metavar="URL", help="sqlite:///PATH or postgresql://…")
    copy.add_argument("--to", dest="target", required=True, metavar="URL", help="an empty database")
    configured.bind(copy, _copy)
