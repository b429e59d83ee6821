"""Findings: what a detector saw, in a form both machines and people can read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType


class Severity(IntEnum):
    """Ordered so that ``max()`` picks the strongest."""

    INFO = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    CRITICAL = 5


# Weight of one finding in the 0-100 risk score.  Two HIGH findings already saturate
# the score, which matches how analysts read it: "more than one strong sign".
SEVERITY_SCORE: Mapping[Severity, int] = MappingProxyType(
    {Severity.INFO: 0, Severity.LOW: 10, Severity.MEDIUM: 25, Severity.HIGH: 50, Severity.CRITICAL: 90}
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One observation.

    ``code`` is stable (policies and dashboards key on it); ``summary`` is a
    sentence fragment a policy can join with others ("AnyDesk is running");
    ``message`` is the full sentence shown on its own.
    """

    code: str
    severity: Severity
    summary: str
    evidence: Mapping[str, str] = field(default_factory=dict)

    @property
    def message(self) -> str:
        return self.summary[:1].upper() + self.summary[1:] + "."
