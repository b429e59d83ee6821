"""Latency against load: each server in open loop at several shares of the rate it reached in closed loop.

One half-rate run says whether one load meets the p99 target.  The curve says up to which
load the target holds, which is what sizing a deployment needs (how many logins a second one
process takes with p99 under 10 ms) and what a restated target could name.  On a machine
where the clients share the cores with the server, latency grows with load well before the
server is saturated; the echo's curve beside the gateway's shows how much of that is Python
gRPC itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING

from gateway.bench.report import error_codes
from gateway.bench.stages import share_cell

if TYPE_CHECKING:
    from gateway.bench.figures import Figures

SERVERS = ("echo", "gateway")
# ``mtsg bench --sweep`` without a value: light, moderate and heavy load around the half-rate run.
DEFAULT_SWEEP = "0.1,0.25,0.75"


def parse_shares(text: str) -> tuple[float, ...]:
    """``"0.1,0.25,0.75"`` -> (0.1, 0.25, 0.75): distinct shares in (0, 1], lightest first.

    ValueError says what is wrong with the text, for the command line to print.
    """
    shares: set[float] = set()
    for part in text.split(","):
        try:
            share = float(part)
        except ValueError:
            raise ValueError(f"{part.strip()!r} is not a number; give shares like {DEFAULT_SWEEP}") from None
        if not 0 < share <= 1:
            raise ValueError(f"{part.strip()} is not a share of the closed-loop rate between 0 and 1 (1 included)")
        shares.add(share)
    return tuple(sorted(shares))


def share_label(share: float) -> str:
    """0.5 -> '1/2', 0.25 -> '1/4': the suffix of an open-loop row's name ("gateway 1/2")."""
    return str(Fraction(share).limit_denominator(100))


def curve_of(figures: Sequence[Figures], server: str) -> list[Figures]:
    """``server``'s open-loop runs at shares of its closed-loop rate, lightest load first."""
    runs = [row for row in figures if row.offered_share is not None and row.server.split(" ")[0] == server]
    return sorted(runs, key=lambda row: row.offered_share or 0.0)


def _misses(row: Figures, limit_ms: float) -> str:
    """Why ``row`` does not hold the target ('' when it does)."""
    if not row.answered:
        return "no call was answered"
    if failed := sum(row.errors.values()):
        return f"{failed:,} call{'' if failed == 1 else 's'} failed ({error_codes(row.errors)})"
    return f"p99 was {row.p99_ms:.2f} ms" if row.p99_ms >= limit_ms else ""


def _first_miss(curve: Sequence[Figures], limit_ms: float) -> int:
    """The index of the lightest run that does not hold the target (``len(curve)`` when all do)."""
    return next((index for index, row in enumerate(curve) if _misses(row, limit_ms)), len(curve))


def held_up_to(curve: Sequence[Figures], limit_ms: float) -> Figures | None:
    """The heaviest run under which p99 stayed below ``limit_ms``, with no failed call, there and at every lighter load.

    A noisy run that misses below a run that meets ends the curve there: the claim is only as
    good as its weakest point.
    """
    missed = _first_miss(curve, limit_ms)
    return curve[missed - 1] if missed else None


def describe_hold(curve: Sequence[Figures], limit_ms: float) -> str:
    """E.g. 'p99 < 10 ms up to 1/4 of the max rate (123/s); at 1/2 p99 was 14.20 ms'."""
    if not curve:
        return "no open-loop run"
    missed = _first_miss(curve, limit_ms)
    held = curve[missed - 1] if missed else None
    claim = (
        f"p99 < {limit_ms:g} ms at no measured load"
        if held is None
        else f"p99 < {limit_ms:g} ms up to {share_label(held.offered_share or 0.0)} of the max rate"
        f" ({held.answered_per_second:,.0f}/s)"
    )
    if missed == len(curve):
        return claim
    ended = curve[missed]
    return f"{claim}; at {share_label(ended.offered_share or 0.0)} {_misses(ended, limit_ms)}"


def render_curve(figures: Sequence[Figures], limit_ms: float) -> str:
    """The runs at each share side by side, echo then gateway, and how far each kept p99 under ``limit_ms``."""
    curves = {server: curve_of(figures, server) for server in SERVERS}
    by_share = {server: {row.offered_share: row for row in curve} for server, curve in curves.items()}
    shares = sorted({share for rows in by_share.values() for share in rows if share is not None})
    columns = "".join(f"{server + ' req/s':>15}{'p50 ms':>9}{'p99 ms':>9}" for server in SERVERS)
    # The gateway's own share under the limit (its rpc histogram), when the bench could read it.
    inside = any(row.inside is not None for row in curves["gateway"])
    inside_header = f"  inside < {limit_ms:g} ms"
    lines = [
        "latency against load (open loop at shares of the rate each server reached in closed loop):",
        f"  {'share':8}{columns}" + (inside_header if inside else ""),
    ]
    for share in shares:
        cells = ""
        for server in SERVERS:
            row = by_share[server].get(share)
            cells += (
                f"{row.answered_per_second:>15,.0f}{row.p50_ms:>9.2f}{row.p99_ms:>9.2f}"
                if row is not None and row.answered
                else f"{'n/a':>15}{'':>9}{'':>9}"
            )
        if inside:
            cells += f"{_inside_cell(by_share['gateway'].get(share), limit_ms):>{len(inside_header)}}"
        lines.append(f"  {share_label(share):8}{cells}")
    for server in SERVERS:
        lines.append(f"  {server}: {describe_hold(curves[server], limit_ms)}")
    return "\n".join(lines)


def _inside_cell(row: Figures | None, limit_ms: float) -> str:
    return share_cell(row.inside.share_within(limit_ms) if row is not None and row.inside is not None else None)
