"""``mtsg bench --sweep``: latency against load, and up to which load p99 stays under the target."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.bench.curve import curve_of, describe_hold, held_up_to, parse_shares, render_curve, share_label
from gateway.bench.figures import Figures
from gateway.bench.runner import QUICK
from gateway.bench.stages import InsideGateway
from gateway.bench.targets import check_targets


def _run(server: str, share: float, p99_ms: float, errors: dict[str, int] | None = None) -> Figures:
    requests = round(1_000 * share)
    return Figures(
        f"{server} {share_label(share)}",
        requests,
        errors or {},
        requests / QUICK.seconds,
        p99_ms / 3,
        p99_ms / 2,
        p99_ms,
        p99_ms * 2,
        1.0,
        50.0,
        offered_share=share,
    )


@pytest.mark.parametrize(
    ("text", "shares"),
    [("0.1,0.25,0.75", (0.1, 0.25, 0.75)), ("0.75, 0.1", (0.1, 0.75)), ("0.5,0.5", (0.5,)), ("1", (1.0,))],
)
def test_shares_are_read_lightest_first_without_repeats(text: str, shares: tuple[float, ...]) -> None:
    assert parse_shares(text) == shares


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "'' is not a number"),
        ("0.1,,0.5", "'' is not a number"),
        ("quarter", "'quarter' is not a number"),
        ("0", "0 is not a share"),
        ("-0.25", "-0.25 is not a share"),
        ("1.5", "1.5 is not a share"),
        ("nan", "nan is not a share"),
    ],
)
def test_bad_shares_are_refused_with_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_shares(text)


def test_rows_are_named_by_their_share_as_the_half_rate_row_always_was() -> None:
    assert [share_label(share) for share in (0.5, 0.1, 0.25, 0.75, 0.33)] == ["1/2", "1/10", "1/4", "3/4", "33/100"]


def test_the_curve_holds_up_to_the_last_load_before_the_first_miss() -> None:
    curve = [_run("gateway", 0.1, 4.0), _run("gateway", 0.25, 6.0), _run("gateway", 0.5, 12.0)]
    held = held_up_to(curve, 10.0)
    assert held is not None and held.offered_share == 0.25
    assert describe_hold(curve, 10.0) == "p99 < 10 ms up to 1/4 of the max rate (50/s); at 1/2 p99 was 12.00 ms"
    assert describe_hold(curve[:2], 10.0) == "p99 < 10 ms up to 1/4 of the max rate (50/s)"  # held at every load


def test_a_miss_at_a_light_load_ends_the_claim_even_if_a_heavier_load_met() -> None:
    """Noise that misses at 1/4 but meets at 1/2 must not read as 'holds up to 1/2'."""
    curve = [_run("gateway", 0.1, 4.0), _run("gateway", 0.25, 11.0), _run("gateway", 0.5, 9.0)]
    held = held_up_to(curve, 10.0)
    assert held is not None and held.offered_share == 0.1


def test_a_run_with_failed_calls_does_not_hold_the_target() -> None:
    """A gateway's own rate limits refusing a few calls (a --target run) must not pass for fast answers."""
    curve = [_run("gateway", 0.1, 4.0, {"RESOURCE_EXHAUSTED": 3}), _run("gateway", 0.25, 5.0)]
    assert held_up_to(curve, 10.0) is None
    assert describe_hold(curve, 10.0) == (
        "p99 < 10 ms at no measured load; at 1/10 3 calls failed (RESOURCE_EXHAUSTED 3)"
    )


def test_the_table_shows_both_servers_at_each_share_and_how_far_each_held() -> None:
    figures = [
        replace(_run("echo", 1.0, 20.0), server="echo", offered_share=None),
        replace(_run("gateway", 1.0, 80.0), server="gateway", offered_share=None),
        _run("echo", 0.5, 3.0),
        _run("gateway", 0.5, 14.0),
        _run("echo", 0.25, 2.0),
        _run("gateway", 0.25, 8.0),
    ]
    assert [row.offered_share for row in curve_of(figures, "gateway")] == [0.25, 0.5]
    lines = render_curve(figures, 10.0).splitlines()
    assert lines[2].split() == ["1/4", "50", "0.67", "2.00", "50", "2.67", "8.00"]
    assert lines[3].split() == ["1/2", "100", "1.00", "3.00", "100", "4.67", "14.00"]
    assert lines[4] == "  echo: p99 < 10 ms up to 1/2 of the max rate (100/s)"
    assert lines[5] == "  gateway: p99 < 10 ms up to 1/4 of the max rate (50/s); at 1/2 p99 was 14.00 ms"
    # The half-rate target names how far the gateway held it when a sweep ran.
    checks = {check.target: check for check in check_targets(figures, None, None, closed_loop=True, cores=2)}
    half_rate = checks["p99 at half the max rate < 10 ms"]
    assert half_rate.met is False and half_rate.measured == "14.00 ms"
    assert half_rate.note == (
        "echo's own: 3.00 ms; gateway p99 < 10 ms up to 1/4 of the max rate (50/s); at 1/2 p99 was 14.00 ms"
    )


def test_with_the_gateways_own_timing_read_the_table_adds_its_share_under_the_limit() -> None:
    quick_inside = InsideGateway(500, ((5.0, 0.9), (10.0, 0.998)))
    figures = [
        replace(_run("echo", 1.0, 20.0), server="echo", offered_share=None),
        replace(_run("gateway", 1.0, 80.0), server="gateway", offered_share=None),
        _run("echo", 0.5, 3.0),
        replace(_run("gateway", 0.5, 14.0), inside=quick_inside),
        _run("echo", 0.1, 2.0),
        _run("gateway", 0.1, 11.0),  # read nothing: a gateway the bench did not start, say
    ]
    lines = render_curve(figures, 10.0).splitlines()
    assert lines[1].endswith("p99 ms  inside < 10 ms")
    assert lines[2].split()[-2:] == ["11.00", "n/a"]
    assert lines[3].split()[-2:] == ["14.00", "99.8%"]
    assert len(lines[3]) == len(lines[1])  # the cell sits under its heading
