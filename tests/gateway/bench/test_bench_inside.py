"""The bench's view of the gateway's own answer times, read from a real /metrics endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import start_http_server

from gateway.bench.processes import free_port
from gateway.bench.runner import _read_or_warn
from gateway.bench.stages import (
    INSIDE_BOUNDS_MS,
    InsideGateway,
    inside_gateway,
    metrics_url,
    read_gateway,
    render_inside,
)
from gateway.bench.workload import CHECK_LOGIN, REPORT_PHONE_CHANGE
from gateway.observability.metrics import LATENCY_BUCKETS, Metrics


@pytest.fixture
def served() -> Iterator[tuple[Metrics, str]]:
    """A gateway's metrics, served for real; the second item is their /metrics URL."""
    metrics, port = Metrics.create(), free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    try:
        yield metrics, metrics_url(f"127.0.0.1:{port}")
    finally:
        server.shutdown()
        thread.join(timeout=5)


def _answer(metrics: Metrics, method: str, code: str, seconds: float, times: int) -> None:
    for _ in range(times):
        metrics.rpc_duration.labels(method=method, code=code).observe(seconds)


def test_only_the_windows_check_login_calls_count_whatever_their_code(served: tuple[Metrics, str]) -> None:
    metrics, url = served
    _answer(metrics, CHECK_LOGIN, "OK", 0.050, 500)  # before the window: slow, and left out
    before = read_gateway([url])
    _answer(metrics, CHECK_LOGIN, "OK", 0.002, 150)
    _answer(metrics, CHECK_LOGIN, "OK", 0.008, 40)
    _answer(metrics, CHECK_LOGIN, "INVALID_ARGUMENT", 0.0004, 8)
    _answer(metrics, CHECK_LOGIN, "OK", 0.030, 2)
    _answer(metrics, REPORT_PHONE_CHANGE, "OK", 0.900, 1000)  # another method: not a login
    inside = inside_gateway(before, read_gateway([url]))
    assert inside == InsideGateway(200, ((5.0, 158 / 200), (10.0, 198 / 200)))
    assert inside.share_within(10.0) == 0.99 and inside.share_within(7.0) is None


def test_an_idle_window_has_no_figure_and_the_line_names_both_runs(served: tuple[Metrics, str]) -> None:
    metrics, url = served
    _answer(metrics, CHECK_LOGIN, "OK", 0.003, 10)
    idle = read_gateway([url])
    assert inside_gateway(idle, read_gateway([url])) is None
    closed = InsideGateway(4_525, ((5.0, 0.938), (10.0, 0.9998)))
    half = InsideGateway(2_254, ((5.0, 0.793), (10.0, 0.992)))
    assert render_inside(closed, half) == (
        "  CheckLogin inside the gateway (its interceptor's start to the answer):"
        " 93.8% under 5 ms, >99.9% under 10 ms of 4,525; at 1/2: 79.3% under 5 ms, 99.2% under 10 ms of 2,254"
    )
    assert render_inside(InsideGateway(3, ((5.0, 1.0), (10.0, 1.0))), None).endswith(
        "100.0% under 5 ms, 100.0% under 10 ms of 3"
    )


def test_the_bounds_read_are_edges_of_the_gateways_histogram() -> None:
    """Between two edges the histogram cannot tell: a bound off its edges would be a guess."""
    assert all(bound / 1000 in LATENCY_BUCKETS for bound in INSIDE_BOUNDS_MS)


def test_metrics_gone_during_a_run_leave_the_figures_out_and_say_so(capsys: pytest.CaptureFixture[str]) -> None:
    gone = metrics_url(f"127.0.0.1:{free_port()}")  # the gateway's /metrics stopped answering
    assert _read_or_warn("gateway 1/2", (gone,)) is None
    assert "gateway 1/2: cannot read the gateway's /metrics (" in capsys.readouterr().err
