"""``mtsg valve status|reset``: the security team looks at and lifts the FREEZE safety valve."""

from __future__ import annotations

import argparse
import time

from gateway.cli.support import (
    AddFlags,
    ConfigLoader,
    StoreCommands,
    actor,
    add_actor_flag,
    iso_time,
    run_async,
    stated_reason,
    with_store,
)
from gateway.store import Store, StoreUnavailableError
from gateway.store.guards import VALVE_WINDOW_SECONDS, ValveState

_EXPECTED = (OSError, StoreUnavailableError)


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "never"
    return iso_time(stamp)


def _describe(state: ValveState, recent: int, cap: int) -> str:
    lines = [
        f"state: {'TRIPPED: FREEZE verdicts are degraded to STEP_UP' if state.tripped else 'closed: FREEZE goes out'}",
        f"tripped at: {_when(state.tripped_at)}",
        f"FREEZE verdicts counted now: {recent} (cap {cap} per {VALVE_WINDOW_SECONDS:g} s,"
        " login.max_freezes_per_minute)",
        f"last reset: {_when(state.reset_at)}" + (f" by {state.reset_by}" if state.reset_by else ""),
    ]
    return "\n".join(lines)


def _status(options: argparse.Namespace, load: ConfigLoader) -> int:
    config = load(options)

    async def work(store: Store) -> int:
        state = await store.guards.valve()
        print(_describe(state, await store.guards.recent_freezes(time.time()), config.login.max_freezes_per_minute))
        return 3 if state.tripped else 0

    return run_async("valve status", lambda: with_store(config, work), _EXPECTED)


def _reset(options: argparse.Namespace, load: ConfigLoader) -> int:
    config = load(options)

    async def work(store: Store) -> int:
        before = await store.guards.valve()
        after = await store.guards.reset_valve(actor(options), time.time(), options.reason)
        print("valve reset: FREEZE verdicts go out again" if before.tripped else "valve was closed; counting restarted")
        print(_describe(after, 0, config.login.max_freezes_per_minute))
        return 0

    return run_async("valve reset", lambda: with_store(config, work), _EXPECTED)


def add_valve_commands(commands: argparse._SubParsersAction, add_config_flags: AddFlags, load: ConfigLoader) -> None:  # type: ignore[type-arg]
    configured = StoreCommands(add_config_flags, load)
    valve = commands.add_parser("valve", help="the FREEZE safety valve: status, reset")
    sub = valve.add_subparsers(dest="valve_command", required=True, metavar="SUBCOMMAND")
    status = sub.add_parser("status", help="is the valve tripped (exit 3) and how many FREEZE verdicts count now")
    configured.bind(status, _status)
    reset = sub.add_parser("reset", help="let FREEZE verdicts go out again, after checking the rules and feeds")
    reset.add_argument(
        "--reason", required=True, type=stated_reason, help="what was checked or fixed (kept in the audit trail)"
    )
    add_actor_flag(reset)
    configured.bind(reset, _reset)
