"""The bench's headline ratio counts answered calls only and says when it means little."""

from __future__ import annotations

from gateway.bench.runner import QUICK, Figures, throughput_ratio


def _figures(server: str, requests: int, errors: dict[str, int] | None = None) -> Figures:
    return Figures(server, requests, errors or {}, requests / QUICK.seconds, 1.0, 2.0, 3.0, 4.0, 0.1, 50.0)


def test_ratio_of_answered_calls() -> None:
    line = throughput_ratio(_figures("echo", 10_000), _figures("gateway", 1_000), QUICK)
    assert line == "gateway/echo throughput: 10%"


def test_failed_calls_are_left_out_of_the_ratio_and_named() -> None:
    gateway = _figures("gateway", 3_000, {"UNAVAILABLE": 1_500, "INTERNAL": 500})
    line = throughput_ratio(_figures("echo", 10_000), gateway, QUICK)
    assert line.startswith("gateway/echo throughput: 10% (answered calls only; 2,000 of 3,000 failed:")
    assert "INTERNAL 500, UNAVAILABLE 1,500" in line


def test_no_ratio_when_nothing_was_answered() -> None:
    gateway = _figures("gateway", 510_778, {"UNAVAILABLE": 510_778})
    line = throughput_ratio(_figures("echo", 29_000), gateway, QUICK)
    expected = "not measured, 510,778 of 510,778 gateway calls failed (UNAVAILABLE 510,778)"
    assert line == f"gateway/echo throughput: {expected}"


def test_open_loop_ratio_says_it_compares_an_offered_load() -> None:
    settings = QUICK.__class__(**{**QUICK.__dict__, "rate": 200.0})
    line = throughput_ratio(_figures("echo", 1_000), _figures("gateway", 1_000), settings)
    assert line.startswith("gateway/echo throughput at the offered 200/s: 100% (open loop:")
