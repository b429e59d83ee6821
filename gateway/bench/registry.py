"""Registry figures: import speed, matcher memory and build time, lookup and evaluation cost at scale.

Measured the way an operator meets them: a CSV feed written to disk and imported
through the same code as ``mtsg blocklist import``; the matcher built from the
store as a gateway builds it at start, in a fresh child process so its memory is
the process's own growth and not this one's leftovers; lookups and whole-login
evaluations timed over many logins of 150-300 apps, against the large registry
and (side by side) an empty one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from queue import Empty
from typing import TYPE_CHECKING

from blocklists.entry import Category
from blocklists.formats.csv_rows import COLUMNS
from gateway.bench.processes import peak_rss_mb
from gateway.bench.report import progress
from gateway.bench.workload import MALICIOUS_SEEDS, malicious_apk_sha256
from gateway.runtime.parent_death import end_with_parent

if TYPE_CHECKING:  # the child process imports what it runs when it starts
    from blocklists.matcher import Matcher
    from signals.telemetry import LoginTelemetry

_CATEGORIES = [category.value for category in Category]


@dataclass(frozen=True)
class RegistryFigures:
    entries: int
    csv_mb: float
    import_seconds: float
    import_entries_per_second: float
    matcher_build_seconds: float
    matcher_mb: float
    lookup_us_per_login_p50: float
    lookup_us_per_login_p99: float
    # The same logins once more, their values already known to the index.
    lookup_again_us_per_login_p50: float
    lookup_again_us_per_login_p99: float
    evaluate_us_per_login_large: float
    evaluate_us_per_login_empty: float


def write_feed(path: Path, entries: int) -> None:
    """A CSV feed: mostly APK hashes, some certificates and package names, the malicious seeds first."""
    with path.open("w", encoding="utf-8") as file:
        file.write(",".join(("key_type", "value", "category", "family", "source")) + "\n")
        for index in range(MALICIOUS_SEEDS):
            file.write(f"apk_sha256,{malicious_apk_sha256(index)},voice_phishing,BenchPhish,bench\n")
        for index in range(entries - MALICIOUS_SEEDS):
            digest = hashlib.sha256(index.to_bytes(8, "little")).hexdigest()
            kind = index % 20
            if kind == 0:
                row = f"cert_sha1,{digest[:40]}"
            elif kind == 1:
                row = f"package_name,com.bench.bad{index}"
            elif kind == 2:
                row = f"cert_sha256,{digest}"
            else:
                row = f"apk_sha256,{digest}"
            file.write(f"{row},{_CATEGORIES[index % len(_CATEGORIES)]},Family{index % 500},feed{index % 7}\n")
    assert COLUMNS[:3] == ("key_type", "value", "category")


async def import_feed(data_dir: Path, feed: Path) -> float:
    from gateway.registry.feed_files import open_feed
    from gateway.registry.importing import import_indicators
    from gateway.store import open_store

    store = await open_store("", data_dir)
    try:
        read = open_feed(feed, "csv", source="bench", default_category=None)
        started = time.perf_counter()
        last = [0.0]

        def report_staged(count: int) -> None:
            if time.perf_counter() - last[0] >= 2:
                last[0] = time.perf_counter()
                progress(f"import: {count:,} entries staged")

        await import_indicators(
            store, read.indicators, actor="bench", label="bench feed", now=time.time(), progress=report_staged
        )
        return time.perf_counter() - started
    finally:
        await store.close()


def _lookups(matcher: Matcher, logins: list[LoginTelemetry], now: float) -> tuple[float, float]:
    """p50 and p99 wall microseconds of one ``match`` per login."""
    lookups = []
    for login in logins:
        started = time.perf_counter()
        matcher.match(login.installed_apps, now)
        lookups.append((time.perf_counter() - started) * 1e6)
    lookups.sort()
    return statistics.median(lookups), lookups[min(len(lookups) - 1, int(len(lookups) * 0.99))]


def _matcher_child(data_dir: str, out: multiprocessing.Queue, parent: int) -> None:  # type: ignore[type-arg]
    """Runs in a fresh process, ended with ``parent``: build the matcher, then time lookups and evaluations with it."""
    end_with_parent(parent)
    from gateway.bench.workload import Workload
    from gateway.config import Config
    from gateway.login.checked_apps import CheckedApps
    from gateway.login.validation import Limits, parse_check_login
    from gateway.login.wire import decode_check_login
    from gateway.policy.knowledge import load_knowledge
    from gateway.store import open_store
    from signals.context import LoginContext
    from signals.evaluate import evaluate

    async def build() -> Matcher:
        store = await open_store("", Path(data_dir))
        try:
            return await store.blocklist.load_matcher()
        finally:
            await store.close()

    # VmHWM, not ru_maxrss: this process was forked from the bench's and then exec'd, and ru_maxrss
    # kept the bench's peak (the import's), above which the build never rose: it read 0 MB.
    before = peak_rss_mb(os.getpid())
    started = time.perf_counter()
    matcher = asyncio.run(build())
    build_seconds = time.perf_counter() - started
    grown_mb = peak_rss_mb(os.getpid()) - before

    now = time.time()
    limits = Limits.of(Config())
    workload = Workload(seed=7, customers=1000, now=now)
    logins = []
    # Parsed as the gateway parses them: an app sent again is the object kept at its first login.
    checked = CheckedApps(limits, max_entries=20_000)
    for operation in workload.operations(1200):
        if operation.method.endswith("CheckLogin"):
            logins.append(parse_check_login(decode_check_login(operation.body), limits, now, checked).telemetry)
    earlier, later = logins[: len(logins) // 2], logins[len(logins) // 2 :]
    # The earlier logins' apps new to the matcher (a gateway's first minutes), then the same logins
    # again: an index remembers the apps it found in none of its tables (blocklists.matcher._ClearedApps).
    first, again = _lookups(matcher, earlier, now), _lookups(matcher, earlier, now)
    knowledge = load_knowledge()
    large = knowledge.__class__(knowledge.policy, knowledge.remote_control, matcher)
    context = LoginContext(now=now)
    timings = {}
    # Evaluated on the later logins, as a gateway meets them in its day: the common apps seen
    # before, each new device's own apps and newly installed ones not.
    for name, known in (("large", large), ("empty", knowledge)):
        started = time.process_time()
        for login in later:
            evaluate(login, context, known)
        timings[name] = (time.process_time() - started) / len(later) * 1e6
    out.put(
        {
            "build_seconds": build_seconds,
            "matcher_mb": grown_mb,
            "size": matcher.size,
            "first": first,
            "again": again,
            "evaluate_large": timings["large"],
            "evaluate_empty": timings["empty"],
        }
    )


def measure_registry(data_dir: Path, entries: int) -> RegistryFigures:
    """Write a feed of ``entries``, import it into ``data_dir``, then measure the matcher in a child process."""
    from gateway.observability.logging_setup import configure_logging

    configure_logging("warning")  # keep stdout for the figures
    feed = data_dir / "bench-feed.csv"
    progress(f"writing a CSV feed of {entries:,} entries")
    write_feed(feed, entries)
    progress(f"importing it ({feed.stat().st_size / 1e6:.0f} MB) as `mtsg blocklist import` does")
    import_seconds = asyncio.run(import_feed(data_dir, feed))
    progress(f"imported in {import_seconds:.1f} s; building the matcher in a fresh process")
    queue: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()  # type: ignore[type-arg]
    child = multiprocessing.get_context("spawn").Process(
        target=_matcher_child, args=(str(data_dir), queue, os.getpid())
    )
    child.start()
    while True:
        try:
            result = queue.get(timeout=1.0)
            break
        except Empty:
            if not child.is_alive():
                raise RuntimeError(f"the matcher measurement process failed (exit code {child.exitcode})") from None
    child.join()
    figures = RegistryFigures(
        entries=result["size"],
        csv_mb=round(feed.stat().st_size / 1e6, 1),
        import_seconds=round(import_seconds, 2),
        import_entries_per_second=round(entries / import_seconds),
        matcher_build_seconds=round(result["build_seconds"], 2),
        matcher_mb=round(result["matcher_mb"], 1),
        lookup_us_per_login_p50=round(result["first"][0], 1),
        lookup_us_per_login_p99=round(result["first"][1], 1),
        lookup_again_us_per_login_p50=round(result["again"][0], 1),
        lookup_again_us_per_login_p99=round(result["again"][1], 1),
        evaluate_us_per_login_large=round(result["evaluate_large"], 1),
        evaluate_us_per_login_empty=round(result["evaluate_empty"], 1),
    )
    feed.unlink()
    return figures


def render_registry(figures: RegistryFigures) -> str:
    return "\n".join(
        (
            f"registry: {figures.entries:,} entries ({figures.csv_mb} MB CSV)",
            f"  import            {figures.import_seconds:>8.1f} s   ({figures.import_entries_per_second:,}/s)",
            f"  matcher build     {figures.matcher_build_seconds:>8.1f} s",
            f"  matcher memory    {figures.matcher_mb:>8.0f} MB  (growth of a fresh process's peak RSS)",
            f"  lookup per login  {figures.lookup_us_per_login_p50:>8.0f} us p50,"
            f" {figures.lookup_us_per_login_p99:.0f} us p99 (150-300 apps; a fresh matcher, as at a start)",
            f"  lookup again      {figures.lookup_again_us_per_login_p50:>8.0f} us p50,"
            f" {figures.lookup_again_us_per_login_p99:.0f} us p99 (the same logins: apps known to match nothing)",
            f"  evaluate per login{figures.evaluate_us_per_login_large:>8.0f} us CPU with this registry,"
            f" {figures.evaluate_us_per_login_empty:.0f} us with an empty one (later logins)",
        )
    )


def registry_json(figures: RegistryFigures) -> str:
    return json.dumps(asdict(figures), indent=2)
