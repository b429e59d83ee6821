"""What every part of the bench shares: progress lines on stderr and the nearest-rank percentile."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping


def progress(message: str) -> None:
    """Progress goes to stderr so stdout holds only the figures."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def percentile(ordered: list[float], share: float) -> float:
    """Nearest-rank percentile of an already sorted list (NaN when empty): always a value that was measured."""
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def error_codes(errors: Mapping[str, int]) -> str:
    """``{"UNAVAILABLE": 1500, "INTERNAL": 500}`` -> 'INTERNAL 500, UNAVAILABLE 1,500' ('none' when empty)."""
    return ", ".join(f"{code} {count:,}" for code, count in sorted(errors.items())) or "none"
