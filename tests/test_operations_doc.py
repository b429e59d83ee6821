"""docs/OPERATIONS.md lists every metric a gateway exports, by the name Prometheus shows, and no other."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.observability.metrics import Metrics

OPERATIONS = Path(__file__).parents[1] / "docs" / "OPERATIONS.md"
_EXPOSED = {"counter": "_total", "gauge": "", "histogram": ""}


def test_every_metric_is_documented_and_every_documented_metric_exists() -> None:
    exported = {family.name + _EXPOSED[family.type] for family in Metrics.create().registry.collect()}
    documented = set(re.findall(r"^\| `(mtsg_[a-z0-9_]+)` \|", OPERATIONS.read_text(), flags=re.MULTILINE))
    assert len(exported) >= 24
    assert exported - documented == set(), "exported but not in docs/OPERATIONS.md"
    assert documented - exported == set(), "in docs/OPERATIONS.md but not exported"
