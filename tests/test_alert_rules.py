"""deploy/prometheus's alert rules are checked against a running gateway, so a renamed metric or label
value cannot leave an alert that silently never fires."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.client import MtsgClient
from gateway.server.start import RunningGateway, start_gateway
from tests.helpers import app, gateway_config, telemetry

RULES = Path(__file__).parents[1] / "deploy" / "prometheus" / "mtsg-alerts.yaml"
SEVERITIES = {"critical", "warning"}
# Metric names start with mtsg_; label matchers are name="value" or name=~"a|b".
_METRIC_NAME = re.compile(r"\bmtsg_[a-z0-9_]+\b")
_EXACT_MATCHER = re.compile(r'\b([a-z_]+)="([^"]*)"')
_CODE_MATCHER = re.compile(r'\bcode=~"([^"]*)"')


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _duration(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([smh])", text)
    assert match, f"not a Prometheus duration: {text!r}"
    return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours"}[match[2]]: int(match[1])})


def unknown_names(expressions: Iterable[str], exported: set[str]) -> set[str]:
    """mtsg metric names the expressions use that the gateway does not export."""
    return {name for expression in expressions for name in _METRIC_NAME.findall(expression)} - exported


def unseen_label_values(expressions: Iterable[str], seen: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Exact label matchers (name="value") that no exported sample carries."""
    return {pair for expression in expressions for pair in _EXACT_MATCHER.findall(expression)} - seen


def test_every_rule_parses_and_says_what_to_do() -> None:
    rules = _rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)) >= 10
    for rule in rules:
        promql_parser.parse(rule["expr"])  # raises ValueError on bad PromQL
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        if "for" in rule:
            assert timedelta(0) < _duration(rule["for"]) <= timedelta(hours=1), rule["alert"]
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]


def test_the_parser_is_not_a_rubber_stamp() -> None:
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(mtsg_verdicts_total[5m])")


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    running = await start_gateway(gateway_config(tmp_path, metrics=True))
    yield running
    await running.stop(grace=1.0)


async def _exported(gateway: RunningGateway) -> tuple[set[str], set[tuple[str, str]]]:
    """Sample names the gateway exports (families without samples yet included) and the label pairs seen."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics")).text
    names: set[str] = set()
    pairs: set[tuple[str, str]] = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        for sample in family.samples:
            names.add(sample.name)
            pairs.update(sample.labels.items())
    return names, pairs


async def test_every_rule_names_metrics_and_label_values_a_running_gateway_exports(gateway: RunningGateway) -> None:
    login = telemetry(installed_apps=[app("com.example.bank")])
    async with MtsgClient(gateway.target, timeout=30) as client:
        await client.check_login(login)
        with pytest.raises(grpc.aio.AioRpcError) as replayed:
            await client.check_login(login)  # the same nonce again: refused as a replay
    assert "nonce" in str(replayed.value.details())
    names, pairs = await _exported(gateway)
    expressions = [rule["expr"] for rule in _rules()]
    assert unknown_names(expressions, names) == set()
    assert unseen_label_values(expressions, pairs) == set()
    codes = {code.name for code in grpc.StatusCode}
    for expression in expressions:
        for alternatives in _CODE_MATCHER.findall(expression):
            assert set(alternatives.split("|")) <= codes, alternatives
    # The check can fail: a misspelt metric and a label value the gateway never writes are caught.
    assert unknown_names(["sum(mtsg_verdict_total)"], names) == {"mtsg_verdict_total"}
    assert unseen_label_values(['mtsg_rate_limited_total{limit="replays"}'], pairs) == {("limit", "replays")}
