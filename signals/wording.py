"""How findings and verdicts put numbers, lists, times and places into sentences.

Reasons are read by customers' advisers and fraud analysts, so they are written
the way a person would write them: "3 apps", not "3 app(s)"; "SMS and
accessibility", not "SMS, accessibility"; "Japan", not "JP"; and what is not
known is left out rather than shown as "unspecified".
"""

from __future__ import annotations

from collections.abc import Sequence

import pycountry

# Words a voice-phishing analyst reads every day, where ISO's formal name is a mouthful.
_SHORT_COUNTRY_NAMES = {"KR": "South Korea", "KP": "North Korea", "TW": "Taiwan", "RU": "Russia", "VN": "Vietnam"}


def counted(count: float, singular: str, plural: str = "") -> str:
    """``count`` and the noun in the number it takes: "1 app", "1,204 apps", "0.5 days"."""
    noun = singular if count == 1 else (plural or singular + "s")
    number = f"{count:,.0f}" if float(count).is_integer() else f"{count:g}"
    return f"{number} {noun}"


def listing(items: Sequence[str], conjunction: str = "and") -> str:
    """Items as a sentence lists them: "a", "a and b", "a, b and c"."""
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def elapsed(seconds: float) -> str:
    """A past stretch of time in the largest unit that fits: "less than a minute", "5 minutes", "2 days"."""
    minutes = int(max(0.0, seconds) // 60)
    if minutes < 1:
        return "less than a minute"
    if minutes < 120:
        return counted(minutes, "minute")
    hours = minutes // 60
    if hours < 48:
        return counted(hours, "hour")
    return counted(hours // 24, "day")


def country_name(code: str) -> str:
    """The country an ISO 3166 alpha-2 code names; the code itself when it names none."""
    upper = code.strip().upper()
    if upper in _SHORT_COUNTRY_NAMES:
        return _SHORT_COUNTRY_NAMES[upper]
    country = pycountry.countries.get(alpha_2=upper) if len(upper) == 2 else None
    if country is None:
        return code
    return str(getattr(country, "common_name", None) or country.name)
