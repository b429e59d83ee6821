"""Importing into the registry: feed files and signed bundles, all or nothing, with progress.

The core parses and checks; this module streams the parsed indicators into the
store's staging area in batches and lets the store merge them in one transaction.
A parse error anywhere leaves the registry exactly as it was.  Signed bundles are
read twice: first to check the signature and the digest of every entry line,
then to import, so nothing from an altered bundle is ever staged.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from blocklists.bundle import Manifest, check_entries, check_freshness, decode_entry, digest_entries, parse_header
from blocklists.bundle import verify_signatures as verify_bundle_signatures
from blocklists.entry import Indicator
from gateway.runtime.background import yielding
from gateway.store import Store
from gateway.store.errors import BundleAppliedMeanwhileError
from gateway.store.records import BundleRecord, ImportSummary

BATCH_SIZE = 10_000
Progress = Callable[[int], None]


async def import_indicators(
    store: Store,
    indicators: Iterable[Indicator],
    *,
    actor: str,
    label: str,
    now: float,
    bundle: BundleRecord | None = None,
    progress: Progress | None = None,
    merging: Progress | None = None,
) -> ImportSummary:
    """Stage every indicator, then merge; any exception from ``indicators`` aborts with nothing applied.

    ``progress`` hears the count of entries read as they are; ``merging`` once, when all are read
    and the merge (one transaction, seconds for a large feed) begins.

    ``indicators`` is read in a worker thread, a batch at a time: parsing and checking a feed of
    hundreds of thousands of entries is seconds of CPU, which on the event loop of a serving gateway
    (a followed feed, an ImportBundle call) would hold every login for as long.
    """
    pending = yielding(indicators)  # consumed in a worker thread, a batch at a time
    async with store.blocklist.importing(actor=actor, label=label, now=now, bundle=bundle) as session:
        while batch := await asyncio.to_thread(_next_batch, pending):
            await session.stage(batch)
            if progress is not None and len(batch) == BATCH_SIZE:
                progress(session.received)
        if merging is not None:
            merging(session.received)
    assert session.summary is not None  # set by the merge when the block exits cleanly
    return session.summary


def _next_batch(indicators: Iterator[Indicator]) -> list[Indicator]:
    return list(itertools.islice(indicators, BATCH_SIZE))


@dataclass(frozen=True, slots=True)
class BundleOutcome:
    manifest: Manifest
    key_id: str
    # None when this very bundle had been applied before (a harmless re-delivery).
    summary: ImportSummary | None


def verify_bundle(
    open_lines: Callable[[], Iterator[bytes]], trusted: dict[str, Ed25519PublicKey]
) -> tuple[Manifest, str]:
    """Signature, then the digest and count of every entry line; returns the manifest and the signing key id."""
    lines = open_lines()
    manifest, signatures = parse_header(next(lines, b""))
    signer = verify_bundle_signatures(manifest, signatures, trusted)
    check_entries(manifest, *digest_entries(lines))
    return manifest, signer


async def import_bundle(
    store: Store,
    open_lines: Callable[[], Iterator[bytes]],
    trusted: dict[str, Ed25519PublicKey],
    *,
    actor: str,
    now: float,
    progress: Progress | None = None,
    merging: Progress | None = None,
) -> BundleOutcome:
    """Verify completely, check it is newer than what this publisher gave us before, then import."""
    manifest, signer = await asyncio.to_thread(verify_bundle, open_lines, trusted)  # a digest of every line
    if not check_freshness(manifest, await store.blocklist.applied_bundle(manifest.publisher), now):
        return BundleOutcome(manifest, signer, None)
    lines = open_lines()
    next(lines)
    try:
        summary = await import_indicators(
            store,
            (decode_entry(line, number) for number, line in enumerate(lines, start=2)),
            actor=actor,
            label=f"bundle {manifest.publisher} v{manifest.bundle_version}",
            now=now,
            bundle=BundleRecord(manifest.publisher, manifest.bundle_version, manifest.entries_sha256, signer),
            progress=progress,
            merging=merging,
        )
    except BundleAppliedMeanwhileError:  # replicas following one feed race to apply each new version
        return BundleOutcome(manifest, signer, None)
    return BundleOutcome(manifest, signer, summary)
