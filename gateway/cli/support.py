"""What every store-opening ``mtsg`` subcommand shares: the actor, the store, and how errors end a run."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import getpass
import math
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blocklists.entry import CONTROL_CHARACTERS_PROBLEM, without_control_characters
from gateway.config import Config
from gateway.observability.logging_setup import configure_logging
from gateway.store import NoStoreError, Store, open_store, sqlite_path

ConfigLoader = Callable[[argparse.Namespace], Config]
AddFlags = Callable[[argparse.ArgumentParser], None]
StoreHandler = Callable[[argparse.Namespace, ConfigLoader], int]


@dataclass(frozen=True)
class StoreCommands:
    """How a command group declares subcommands that read the configuration and so find the store.

    Every such subcommand takes the same configuration flags and runs with the same loader; one
    place attaches both, so no group can forget the flags on one subcommand.
    """

    add_flags: AddFlags
    load: ConfigLoader

    def add(self, group: Any, name: str, text: str, handler: StoreHandler) -> argparse.ArgumentParser:
        """A new subcommand ``name`` of ``group`` that runs ``handler``."""
        return self.bind(group.add_parser(name, help=text), handler)

    def bind(self, parser: argparse.ArgumentParser, handler: StoreHandler) -> argparse.ArgumentParser:
        """``parser`` takes the configuration flags and runs ``handler``."""
        self.add_flags(parser)
        load = self.load
        parser.set_defaults(run=lambda options: handler(options, load))
        return parser


class CommandError(RuntimeError):
    """A mistake of the operator's: printed as one line, exit status 2."""


def actor(options: argparse.Namespace) -> str:
    """Who is acting, for the audit trail: ``--actor`` or ``cli:<user>@<host>``."""
    return options.actor or f"cli:{getpass.getuser()}@{socket.gethostname()}"


def add_actor_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--actor", default="", type=plain_text, help="who does this, for the audit trail (default cli:USER@HOST)"
    )


# The largest integer either store takes (SQLite's INTEGER, PostgreSQL's BIGINT).
_LARGEST_STORED_INTEGER = 2**63 - 1


def positive_count(text: str) -> int:
    """An argparse type for --limit and the like: a whole number of 1 or more (0 or -1 would mean "all" to SQL),
    and one the store can take (a larger one failed inside the driver with a traceback)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= _LARGEST_STORED_INTEGER:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 1 to {_LARGEST_STORED_INTEGER}, got {text[:40]!r}"
        )
    return value


def _number(text: str) -> float:
    """The number ``text`` names, or nan when it names none: refused then with every other bad value."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def positive_number(text: str) -> float:
    """An argparse type for --hours and the like: a finite number above 0 (not nan, not inf)."""
    value = _number(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


def number_within(low: float, high: float, what: str = "a number") -> Callable[[str], float]:
    """An argparse type for a finite number from ``low`` to ``high``, both included."""

    def parse(text: str) -> float:
        value = _number(text)
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"expected {what} from {low:g} to {high:g}, got {text!r}")
        return value

    return parse


def stated_reason(text: str) -> str:
    """An argparse type for --reason: the audit trail needs words a person can read, not blanks or escapes."""
    reason = plain_text(text)
    if not reason:
        raise argparse.ArgumentTypeError("must say why, in words (it goes into the audit trail)")
    return reason


def given_name(text: str) -> str:
    """An argparse type for a name or id that must be there (--name, --customer): an empty one names nobody."""
    name = plain_text(text)
    if not name:
        raise argparse.ArgumentTypeError("must not be empty")
    return name


def file_stem(text: str) -> str:
    """An argparse type for the stem of files a command makes in a directory it is given: a plain name,
    so that the files land in that directory (not "../x") and are not hidden (".key")."""
    name = given_name(text)
    if "/" in name or "\\" in name or name.startswith("."):
        raise argparse.ArgumentTypeError(f"must be a plain file name (no '/', not starting with '.'), got {name!r}")
    return name


def plain_text(text: str) -> str:
    """An argparse type for text the audit trail keeps (--comment, --actor): no control characters, since an
    escape sequence kept there would act on the terminal of whoever lists it later."""
    if not without_control_characters(text):
        raise argparse.ArgumentTypeError(CONTROL_CHARACTERS_PROBLEM)
    return text.strip()


def iso_time(stamp: float) -> str:
    """A stored time (seconds since the epoch) as operators read it: ISO 8601 in UTC, to the second."""
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).isoformat(timespec="seconds")


def table_progress(done: str) -> Callable[[str, int, bool], None]:
    """A progress line on stderr per table: at most one a second while it runs, and one when it is ``done``."""
    last = 0.0

    def report(table: str, rows: int, finished: bool) -> None:
        nonlocal last
        now = time.monotonic()
        if finished or now - last >= 1.0:
            last = now
            print(f"  {table}: {rows:,} rows{' ' + done if finished else ' …'}", file=sys.stderr, flush=True)

    return report


def write_key_files(command: str, files: Sequence[tuple[Path, bytes, int]]) -> int:
    """Write each (path, content, mode) as a new file, all or none; the exit code (0 when written).

    Keys come in sets (a private key and its public half, a secret beside a key pair). So an
    existing file refuses the lot before anything is written (2: never overwrite a key), and a
    failure midway (a path that is not a directory, no permission, a full disk) removes what this
    call wrote (1), rather than leave half a set that the next run would refuse as existing.
    """
    parents = {path.parent for path, _, _ in files}
    not_directories = sorted(str(parent) for parent in parents if parent.exists() and not parent.is_dir())
    if not_directories:
        print(f"mtsg {command}: {', '.join(not_directories)} is not a directory", file=sys.stderr)
        return 2
    existing = [str(path) for path, _, _ in files if path.exists()]
    if existing:
        verb = "exists" if len(existing) == 1 else "exist"
        print(f"mtsg {command}: {', '.join(existing)} {verb}; not overwriting a key", file=sys.stderr)
        return 2
    written: list[Path] = []
    try:
        for path, content, mode in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            written.append(path)
            with os.fdopen(descriptor, "wb") as file:
                file.write(content)
    except OSError as error:
        print(f"mtsg {command}: cannot write {error.filename or path}: {error.strerror or error}", file=sys.stderr)
        for made in written:
            made.unlink(missing_ok=True)
        return 1
    return 0


def ensure_readable(path: Path) -> None:
    """CommandError unless ``path`` is a file this process can open."""
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror or error}") from error


def run_async(name: str, work: Callable[[], Coroutine[Any, Any, int]], expected: tuple[type[Exception], ...]) -> int:
    """Run ``work``; an operator's mistake exits 2, an ``expected`` failure (I/O, store, input) exits 1."""
    try:
        return asyncio.run(work())
    except CommandError as error:
        print(f"mtsg {name}: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise  # the reader of the output left (`| head`): not a failure to report, `main` ends quietly
    except expected as error:
        print(f"mtsg {name}: {error}", file=sys.stderr)
        return 1


_OPERATOR_LOG_LEVELS = ("debug", "warning", "error")


async def with_store(config: Config, work: Callable[[Store], Awaitable[int]], *, creates: bool = False) -> int:
    """Open the installation's store for ``work``.

    Only commands that seed an installation (``creates``: adding to the registry, applying a policy)
    may make a new SQLite store. Any other, run with the wrong --data-dir or none, would create an
    empty store and answer from it: "no commands", "valve closed", and the operator would believe it.
    A seeding command checks the file it reads before it calls this: a mistyped path, an empty file
    or a policy with problems must fail before it has made a store, maybe in the wrong place.
    """
    # A command prints for a person: the store's info lines (each migration applied to a new store) are
    # a log's, not an answer's. Warnings and errors still reach stderr; logging.level = "debug" shows all.
    configure_logging(config.logging.level if config.logging.level in _OPERATOR_LOG_LEVELS else "warning")
    path = sqlite_path(config.store.url, config.data_dir)
    if not creates and path is not None and not path.is_file():
        raise CommandError(
            f"no mtsg store at {path}: give the installation's --data-dir or --config"
            " (`mtsg serve` or `mtsg migrate` makes a new one)"
        )
    try:
        store = await open_store(
            config.store.url,
            config.data_dir,
            config.store.pool_size,
            config.store.statement_timeout_seconds,
            creates=creates,
        )
    except NoStoreError as error:
        raise CommandError(
            f"{error}: give the installation's --config or store.url (`mtsg serve` or `mtsg migrate` makes a new one)"
        ) from None
    try:
        return await work(store)
    finally:
        await store.close()
