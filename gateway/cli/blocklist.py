"""``mtsg blocklist ...``, ``mtsg keys generate`` and ``mtsg audit list``: the registry from the host.

These commands open the gateway's store directly (the same config as ``mtsg
serve``), so they work for a million-entry import that would not fit in one gRPC
message; every running gateway picks the change up at its next poll.  The actor
recorded in the audit trail is ``cli:<user>@<host>`` unless ``--actor`` says more.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from blocklists.bundle import (
    MAX_BUNDLE_VERSION,
    BundleError,
    check_freshness,
    digest_entries,
    encode_entry,
    header_line,
    key_id,
    load_private_key,
    make_manifest,
    private_key_pem,
    public_key_pem,
    read_header,
    sign_manifest,
)
from blocklists.entry import (
    EXPIRED_PROBLEM,
    Category,
    Entry,
    EntrySeverity,
    InvalidIndicatorError,
    KeyType,
    expired_by,
    make_indicator,
    parse_category,
    parse_key_type,
    parse_severity,
)
from blocklists.formats import FeedFormatError, format_timestamp, parse_timestamp
from blocklists.formats.csv_rows import write_csv
from blocklists.formats.stix import write_stix
from gateway.cli.support import (
    CommandError,
    ConfigLoader,
    StoreCommands,
    actor,
    add_actor_flag,
    ensure_readable,
    file_stem,
    positive_count,
    run_async,
    stated_reason,
    with_store,
    write_key_files,
)
from gateway.registry.feed_files import (
    FORMATS,
    FeedFileError,
    FeedRead,
    ProgressLine,
    detect_format,
    ensure_not_empty,
    open_feed,
)
from gateway.registry.importing import import_bundle, import_indicators, verify_bundle
from gateway.registry.trusted_keys import TrustedKeyError, require_trusted_keys
from gateway.store import Store, StoreUnavailableError
from gateway.store.errors import EntryExistsError, EntryNotFoundError
from gateway.store.records import EntryQuery, ImportSummary
from gateway.urls import without_secrets

_EXPECTED = (
    BundleError,
    FeedFormatError,
    FeedFileError,
    InvalidIndicatorError,
    EntryExistsError,
    EntryNotFoundError,
    TrustedKeyError,
    StoreUnavailableError,
    OSError,
)


def _run(name: str, work: Callable[[], Coroutine[Any, Any, int]]) -> int:
    return run_async(name, work, _EXPECTED)


def _entry_text(entry: Entry) -> str:
    indicator = entry.indicator
    state = f"revoked ({indicator.revoke_reason})" if indicator.revoked else "active"
    lines = [
        f"{entry.entry_id}  {indicator.key_type.value}={indicator.value}"
        + (f" package={indicator.package_name}" if indicator.package_name else ""),
        f"  {indicator.category.value}, {indicator.severity.value}, family {indicator.family or '-'}, {state}",
        f"  source {indicator.source} {indicator.source_reference}".rstrip() + f", confidence {indicator.confidence}",
        f"  created {format_timestamp(entry.created_at)} by {entry.created_by};"
        f" modified {format_timestamp(entry.modified_at)} by {entry.modified_by}",
    ]
    if indicator.valid_from is not None or indicator.valid_until is not None:
        start = format_timestamp(indicator.valid_from) if indicator.valid_from is not None else "always"
        end = format_timestamp(indicator.valid_until) if indicator.valid_until is not None else "no end"
        lines.append(f"  valid {start} .. {end}")
    return "\n".join(lines)


# --- keys -------------------------------------------------------------------------------


def _keys_generate(options: argparse.Namespace) -> int:
    directory: Path = options.dir
    private_path, public_path = directory / f"{options.name}.key", directory / f"{options.name}.pub"
    key = Ed25519PrivateKey.generate()
    failed = write_key_files(
        "keys generate",
        [(private_path, private_key_pem(key), 0o600), (public_path, public_key_pem(key.public_key()), 0o644)],
    )
    if failed:
        return failed
    print(f"key id {key_id(key.public_key())}")
    print(f"private key {private_path} (keep it secret; it signs bundles)")
    print(f"public key  {public_path} (copy it into each gateway's trusted-keys directory)")
    return 0


# --- blocklist: single entries ----------------------------------------------------------------


class _EnumArgument:
    """An argparse type for one of an enum's values, spelled as the feeds may spell it (any case, '-' for '_').

    A mistyped value is refused before anything runs (exit 2): unchecked, `blocklist list --key-type
    pakage_name` answered "0 entries", and the operator believed the registry had none.
    """

    def __init__(self, parse: Callable[[str], Enum], members: type[Enum]) -> None:
        self._parse = parse
        self.choices = ", ".join(str(member.value) for member in members)

    def __call__(self, text: str) -> str:
        try:
            return str(self._parse(text).value)
        except InvalidIndicatorError as error:
            raise argparse.ArgumentTypeError(error.message) from None


_KEY_TYPE = _EnumArgument(parse_key_type, KeyType)
_CATEGORY = _EnumArgument(parse_category, Category)
_SEVERITY = _EnumArgument(parse_severity, EntrySeverity)


def _blocklist_add(options: argparse.Namespace, load: ConfigLoader) -> int:
    try:
        valid_until = parse_timestamp(options.valid_until) if options.valid_until else None
    except ValueError as error:
        print(f"mtsg blocklist add: --valid-until: {error}", file=sys.stderr)
        return 2

    def checked_then_added() -> Coroutine[Any, Any, int]:
        """The entry is checked before the store is opened: a bad value, given with a mistyped --data-dir
        or none, made a new store there before it was refused."""
        indicator = make_indicator(
            key_type=options.key_type,
            value=options.value,
            category=options.category,
            severity=options.severity,
            package_name=options.package_name,
            family=options.family,
            source=options.source,
            source_reference=options.source_reference,
            confidence=options.confidence,
            valid_until=valid_until,
        )
        now = time.time()
        if expired_by(indicator, now):
            raise CommandError(f"--valid-until {EXPIRED_PROBLEM}")

        async def work(store: Store) -> int:
            entry = await store.blocklist.add_entry(indicator, actor(options), now)
            print(_entry_text(entry))
            return 0

        return with_store(load(options), work, creates=True)

    return _run("blocklist add", checked_then_added)


def _blocklist_revoke(options: argparse.Namespace, load: ConfigLoader) -> int:
    async def work(store: Store) -> int:
        entry = await store.blocklist.revoke_entry(options.entry_id, options.reason, actor(options), time.time())
        print(_entry_text(entry))
        return 0

    return _run("blocklist revoke", lambda: with_store(load(options), work))


def _blocklist_get(options: argparse.Namespace, load: ConfigLoader) -> int:
    async def work(store: Store) -> int:
        entry = await store.blocklist.get_entry(options.entry_id)
        if entry is None:
            raise EntryNotFoundError(options.entry_id)
        print(_entry_text(entry))
        return 0

    return _run("blocklist get", lambda: with_store(load(options), work))


def _blocklist_list(options: argparse.Namespace, load: ConfigLoader) -> int:
    async def work(store: Store) -> int:
        query = EntryQuery(
            page_size=min(options.limit, 1000),
            after=options.after,
            category=options.category or "",
            source=options.source,
            key_type=options.key_type or "",
            text=options.text,
            include_revoked=options.include_revoked,
        )
        shown = 0
        while shown < options.limit:
            entries, last = await store.blocklist.list_entries(query)
            for entry in entries[: options.limit - shown]:
                print(_entry_text(entry))
                shown += 1
            if not last:
                break
            query = replace(query, after=last)
        print(f"{shown} entr{'y' if shown == 1 else 'ies'}", file=sys.stderr)
        return 0

    return _run("blocklist list", lambda: with_store(load(options), work))


def _blocklist_status(options: argparse.Namespace, load: ConfigLoader) -> int:
    async def work(store: Store) -> int:
        status = await store.blocklist.status(time.time())
        last_import = format_timestamp(status.last_import_at) if status.last_import_at else "never"
        print(f"version {status.version}, {status.active_count:,} active entries, last import {last_import}")
        for title, counts in (
            ("by category", status.by_category),
            ("by key type", status.by_key_type),
            ("by source", status.by_source),
        ):
            print(title + ":")
            for name, count in counts:
                print(f"  {name:<28} {count:>10,}")
        feeds = await store.blocklist.feed_statuses()
        if feeds:
            print("feeds:")
        for feed in feeds:
            success = format_timestamp(feed.last_success_at) if feed.last_success_at else "never"
            print(f"  {without_secrets(feed.url)}: last success {success}, bundle version {feed.bundle_version or '-'}")
            if feed.last_error:
                print(f"    last error ({format_timestamp(feed.last_attempt_at)}): {feed.last_error}")
        return 0

    return _run("blocklist status", lambda: with_store(load(options), work))


# --- blocklist: files -------------------------------------------------------------------------


def _file_lines(path: Path) -> Callable[[], Iterator[bytes]]:
    def open_lines() -> Iterator[bytes]:
        with path.open("rb") as file:
            yield from file

    return open_lines


def _print_summary(summary: ImportSummary, skipped: int = 0) -> None:
    print(
        f"registry version {summary.version}: {summary.added:,} added, {summary.updated:,} updated,"
        f" {summary.revoked:,} revoked, {summary.unchanged:,} unchanged"
        f" ({summary.received:,} read, {summary.duplicates:,} duplicates"
        + (f", {skipped:,} not about apps skipped" if skipped else "")
        + ")"
    )


def _blocklist_import(options: argparse.Namespace, load: ConfigLoader) -> int:
    path: Path = options.file
    config = load(options)

    async def work(store: Store, feed_format: str, read: FeedRead | None) -> int:
        started = time.monotonic()
        if read is None:
            trusted = require_trusted_keys(config.trusted_keys_dir)
            line = ProgressLine("mtsg blocklist import")
            outcome = await import_bundle(
                store,
                _file_lines(path),
                trusted,
                actor=actor(options),
                now=time.time(),
                progress=line,
                merging=line.merging,
            )
            manifest = outcome.manifest
            print(f"bundle {manifest.publisher} v{manifest.bundle_version} signed by {outcome.key_id}")
            if outcome.summary is None:
                print("already applied; nothing changed")
            else:
                _print_summary(outcome.summary)
        else:
            line = ProgressLine("mtsg blocklist import", read)
            summary = await import_indicators(
                store,
                read.indicators,
                actor=actor(options),
                label=f"{feed_format} {path.name}",
                now=time.time(),
                progress=line,
                merging=line.merging,
            )
            _print_summary(summary, read.stats.skipped)
        print(f"took {time.monotonic() - started:.1f} s", file=sys.stderr)
        return 0

    async def checked_then_imported() -> int:
        """What can be told of the file without a store is told first: an empty file, one of no known
        format, or a JSON or YAML document that does not parse, given in the wrong directory, made a new
        store there before it was refused."""
        ensure_readable(path)
        ensure_not_empty(path)
        feed_format = options.format or detect_format(path)
        read = None
        if feed_format != "bundle":  # a bundle is read and verified line by line inside the import
            default_category = parse_category(options.category) if options.category else None
            read = open_feed(path, feed_format, source=options.source or path.stem, default_category=default_category)
        return await with_store(config, lambda store: work(store, feed_format, read), creates=True)

    return _run("blocklist import", checked_then_imported)


def _blocklist_export(options: argparse.Namespace, load: ConfigLoader) -> int:
    async def work(store: Store) -> int:
        entries = [entry.indicator async for entry in store.blocklist.iter_entries(options.include_revoked)]
        target: Path = options.file
        partial = target.with_name(target.name + ".partial")
        try:
            if options.format == "bundle":
                with partial.open("wb") as file:
                    file.write(header_line(None, []))
                    file.writelines(encode_entry(indicator) for indicator in entries)
            else:
                with partial.open("w", encoding="utf-8", newline="") as text:
                    if options.format == "csv":
                        text.writelines(write_csv(entries))
                    else:
                        json.dump(write_stix(entries, created_at=time.time()), text, indent=1)
            partial.replace(target)  # a reader never sees half a file
        except OSError as error:
            partial.unlink(missing_ok=True)  # a full disk or a directory in the way leaves no half file behind
            raise OSError(f"cannot write {target}: {error.strerror or error}") from None
        print(f"{len(entries):,} entries written to {target} ({options.format})")
        return 0

    return _run("blocklist export", lambda: with_store(load(options), work))


# A bundle is a snapshot of a feed: one that claims to be good for more than this is a typo.
MAX_EXPIRES_IN_DAYS = 3650


def _blocklist_sign(options: argparse.Namespace) -> int:
    async def work() -> int:
        if not 1 <= options.bundle_version <= MAX_BUNDLE_VERSION:
            raise CommandError(
                f"--bundle-version must be from 1 to {MAX_BUNDLE_VERSION},"
                " and higher than the last bundle you published"
            )
        if not 0 < options.expires_in_days <= MAX_EXPIRES_IN_DAYS:
            raise CommandError(f"--expires-in-days must be above 0 and at most {MAX_EXPIRES_IN_DAYS} (ten years)")
        keys = [load_private_key(Path(path).read_bytes()) for path in options.key]
        lines = _file_lines(options.input)
        first_pass = lines()
        read_header(next(first_pass, b""))  # signed or not, it must be a bundle; old signatures are replaced
        count, sha256 = digest_entries(first_pass)
        now = time.time()
        manifest = make_manifest(
            publisher=options.publisher,
            bundle_version=options.bundle_version,
            issued_at=now,
            expires_at=now + options.expires_in_days * 86_400,
            entry_count=count,
            entries_sha256=sha256,
        )
        signatures = [sign_manifest(manifest, key) for key in keys]
        partial = options.output.with_name(options.output.name + ".partial")
        with partial.open("wb") as file:
            file.write(header_line(manifest, signatures))
            entries = lines()
            next(entries, None)
            for line in entries:
                file.write(line)
        partial.replace(options.output)
        print(
            f"signed {count:,} entries as {manifest.publisher} v{manifest.bundle_version}, expires {manifest.expires}"
        )
        print(
            ("key id: " if len(signatures) == 1 else "key ids: ")
            + ", ".join(signature.keyid for signature in signatures)
        )
        return 0

    return _run("blocklist sign", work)


def _blocklist_verify(options: argparse.Namespace, load: ConfigLoader) -> int:
    async def work() -> int:
        trusted_dir = options.trusted_keys or load(options).trusted_keys_dir
        manifest, signer = verify_bundle(_file_lines(options.file), require_trusted_keys(trusted_dir))
        check_freshness(manifest, None, time.time())
        print(
            f"valid: {manifest.publisher} v{manifest.bundle_version}, {manifest.entry_count:,} entries,"
            f" signed by {signer}, issued {manifest.issued_at}, expires {manifest.expires}"
        )
        return 0

    return _run("blocklist verify", work)


# --- audit ---------------------------------------------------------------------------------


def _audit_list(options: argparse.Namespace, load: ConfigLoader) -> int:
    async def work(store: Store) -> int:
        records = await store.blocklist.audit_list(options.limit, options.target)
        for record in records:
            print(f"#{record.audit_id} {format_timestamp(record.at)} {record.actor} {record.action} {record.target}")
            if record.detail:
                print(f"    {record.detail}")
            if options.verbose:
                print(f"    before: {record.before_json or '-'}")
                print(f"    after:  {record.after_json or '-'}")
        return 0

    return _run("audit list", lambda: with_store(load(options), work))


# --- parser ---------------------------------------------------------------------------------


def add_registry_commands(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    add_config_flags: Callable[[argparse.ArgumentParser], None],
    load: ConfigLoader,
) -> None:
    """Attach ``keys``, ``blocklist`` and ``audit`` to the ``mtsg`` parser."""

    store_command = StoreCommands(add_config_flags, load).add

    keys = commands.add_parser("keys", help="publisher signing keys")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="SUBCOMMAND")
    generate = keys_commands.add_parser("generate", help="make an Ed25519 key pair for signing bundles")
    generate.add_argument("name", type=file_stem, help="file name stem: NAME.key (private) and NAME.pub (public)")
    generate.add_argument("--dir", type=Path, default=Path("."), help="where to write them (default .)")
    generate.set_defaults(run=_keys_generate)

    blocklist = commands.add_parser("blocklist", help="the malicious-app registry")
    group = blocklist.add_subparsers(dest="blocklist_command", required=True, metavar="SUBCOMMAND")

    add = store_command(group, "add", "add one indicator", _blocklist_add)
    add.add_argument("--key-type", required=True, type=_KEY_TYPE, help=_KEY_TYPE.choices)
    add.add_argument("--value", required=True, help="the hash or package name")
    add.add_argument("--category", required=True, type=_CATEGORY, help=_CATEGORY.choices)
    add.add_argument("--severity", default="high", type=_SEVERITY, help=f"{_SEVERITY.choices} (default high)")
    add.add_argument("--package-name", default="", help="the package, with --key-type package_and_cert")
    add.add_argument("--family", default="", help="malware family or app name")
    add.add_argument("--source", default="manual", help="where the indicator comes from (default manual)")
    add.add_argument("--source-reference", default="", help="ticket, report URL or id in the source")
    add.add_argument("--confidence", type=int, default=50, help="0 to 100 (default 50)")
    add.add_argument("--valid-until", default="", help="RFC 3339 time after which it stops matching")
    add_actor_flag(add)

    revoke = store_command(group, "revoke", "revoke one indicator (kept for the audit trail)", _blocklist_revoke)
    revoke.add_argument("entry_id")
    revoke.add_argument("--reason", required=True, type=stated_reason, help="why, in words (required)")
    add_actor_flag(revoke)

    get = store_command(group, "get", "show one indicator", _blocklist_get)
    get.add_argument("entry_id")

    listing = store_command(group, "list", "list indicators", _blocklist_list)
    listing.add_argument("--category", type=_CATEGORY, help=_CATEGORY.choices)
    listing.add_argument("--source", default="")
    listing.add_argument("--key-type", type=_KEY_TYPE, help=_KEY_TYPE.choices)
    listing.add_argument("--text", default="", help="substring of value, package name or family")
    listing.add_argument("--include-revoked", action="store_true")
    listing.add_argument("--limit", type=positive_count, default=100, help="at most this many (default 100)")
    listing.add_argument("--after", default="", help="start after this entry id (paging)")

    store_command(group, "status", "version, counts by category and source, last import, feeds", _blocklist_status)

    importing = store_command(group, "import", "import a feed file, all or nothing", _blocklist_import)
    importing.add_argument("file", type=Path)
    importing.add_argument("--format", choices=FORMATS, help="default: from the file name and first line")
    importing.add_argument(
        "--source", default="", help="source name for rows that do not name one (default: file stem)"
    )
    importing.add_argument("--category", type=_CATEGORY, help="category for STIX indicators that do not say")
    add_actor_flag(importing)

    export = store_command(group, "export", "write the registry to a file", _blocklist_export)
    export.add_argument("file", type=Path)
    export.add_argument("--format", choices=("bundle", "csv", "stix"), default="bundle")
    export.add_argument("--include-revoked", action="store_true")

    sign = group.add_parser("sign", help="sign an exported bundle for distribution")
    sign.add_argument("input", type=Path, help="a bundle from `mtsg blocklist export` (or an older signed one)")
    sign.add_argument("output", type=Path)
    sign.add_argument("--key", action="append", required=True, help="private key file; repeat to co-sign (rotation)")
    sign.add_argument("--publisher", required=True, help="publisher name, the same for every bundle of this feed")
    sign.add_argument("--bundle-version", type=int, required=True, help="higher than any version published before")
    sign.add_argument("--expires-in-days", type=float, default=7.0, help="default 7")
    sign.set_defaults(run=_blocklist_sign)

    verify = store_command(group, "verify", "check a signed bundle against the trusted keys", _blocklist_verify)
    verify.add_argument("file", type=Path)
    verify.add_argument("--trusted-keys", type=Path, help="directory of *.pub (default: the gateway's)")

    audit = commands.add_parser("audit", help="the audit trail of admin changes")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")
    audit_list = store_command(audit_commands, "list", "newest changes first", _audit_list)
    audit_list.add_argument("--target", default="", help="only changes to this entry id or import label")
    audit_list.add_argument("--limit", type=positive_count, default=50)
    audit_list.add_argument("--verbose", action="store_true", help="also print before and after")
