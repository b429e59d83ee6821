"""Scenario conditions: a small tree over the findings of one login.

A ``Select`` leaf picks findings by code, category, severity and thresholds on
their measures, and holds when it picked at least ``min_count``.  ``AllOf``,
``AnyOf`` and ``Not`` combine leaves.  Evaluation returns, for a condition that
holds, the findings each holding leaf picked (strongest first): those are the
findings the scenario rests on, and the first of each group speaks in the
verdict's summary.  ``Not`` never contributes findings; an absence explains nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from signals.findings import Finding, Severity

# For a condition that holds: the picked findings of each holding leaf, in tree order.
Groups = list[list[Finding]]


def _measure(finding: Finding, name: str) -> float | None:
    raw = finding.evidence.get(name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Select:
    """Findings whose code is in ``codes`` (empty: any) and category in ``categories`` (empty: any),
    except ``excluded`` codes ("any other finding")."""

    codes: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    excluded: frozenset[str] = frozenset()
    min_severity: Severity = Severity.INFO
    min_count: int = 1
    at_least: tuple[tuple[str, float], ...] = ()
    at_most: tuple[tuple[str, float], ...] = ()

    def picks(self, finding: Finding, category: str) -> bool:
        if self.codes and finding.code not in self.codes:
            return False
        if self.categories and category not in self.categories:
            return False
        if finding.code in self.excluded:
            return False
        if finding.severity < self.min_severity:
            return False
        for name, low in self.at_least:
            value = _measure(finding, name)
            if value is None or value < low:
                return False
        for name, high in self.at_most:
            value = _measure(finding, name)
            if value is None or value > high:
                return False
        return True

    def evaluate(self, findings: Sequence[tuple[Finding, str]]) -> Groups | None:
        picked = [finding for finding, category in findings if self.picks(finding, category)]
        if len(picked) < self.min_count:
            return None
        picked.sort(key=lambda finding: finding.severity, reverse=True)
        return [picked]


@dataclass(frozen=True, slots=True)
class AllOf:
    children: tuple[Condition, ...]

    def evaluate(self, findings: Sequence[tuple[Finding, str]]) -> Groups | None:
        groups: Groups = []
        for child in self.children:
            held = child.evaluate(findings)
            if held is None:
                return None
            groups.extend(held)
        return groups


@dataclass(frozen=True, slots=True)
class AnyOf:
    """Holds when one child holds; the first holding child, in the author's order, explains it."""

    children: tuple[Condition, ...]

    def evaluate(self, findings: Sequence[tuple[Finding, str]]) -> Groups | None:
        for child in self.children:
            held = child.evaluate(findings)
            if held is not None:
                return held
        return None


@dataclass(frozen=True, slots=True)
class Not:
    child: Condition

    def evaluate(self, findings: Sequence[tuple[Finding, str]]) -> Groups | None:
        return None if self.child.evaluate(findings) is not None else []


Condition = Select | AllOf | AnyOf | Not
