"""What a detector can say: the declared shape of every finding code.

A policy is data written by people, so it is checked against this catalogue
before it goes live: an unknown code, a severity the detector never emits, a
threshold on evidence the finding does not carry or beyond what it can reach —
each is a mistake that would silently make a scenario dead.  Each detector
declares its kinds next to the code that emits them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from signals.findings import Severity


@dataclass(frozen=True, slots=True)
class Measure:
    """Numeric evidence a scenario may put a threshold on, with the range the detector can produce."""

    name: str
    low: float
    high: float
    unit: str


@dataclass(frozen=True, slots=True)
class FindingKind:
    code: str
    # The signal family, for policy filters: "remote_control", "location", ...
    category: str
    severities: frozenset[Severity]
    description: str
    # True when one login can carry several findings of this code (one per app).
    per_app: bool = False
    measures: Mapping[str, Measure] = field(default_factory=dict)

    @property
    def strongest(self) -> Severity:
        return max(self.severities)


def kind(
    code: str,
    category: str,
    severities: tuple[Severity, ...],
    description: str,
    *,
    per_app: bool = False,
    measures: tuple[Measure, ...] = (),
) -> FindingKind:
    return FindingKind(
        code=code,
        category=category,
        severities=frozenset(severities),
        description=description,
        per_app=per_app,
        measures=MappingProxyType({measure.name: measure for measure in measures}),
    )
