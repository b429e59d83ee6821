"""Unusual location: far from the customer's usual places, impossible travel, a new country, a VPN.

Distances are great-circle (haversine) and conservative: the reported accuracy
radii of both fixes are subtracted first, so a coarse IP-based fix does not look
like a journey.  Mock locations are reported by the device-integrity detector.
"""

from __future__ import annotations

import math

from signals.context import LoginContext, PastLocation
from signals.detector_settings import DetectorSettings
from signals.findings import Finding, Severity
from signals.kinds import Measure, kind
from signals.telemetry import Location, LoginTelemetry
from signals.wording import country_name, elapsed

UNUSUAL_LOCATION = "UNUSUAL_LOCATION"
IMPOSSIBLE_TRAVEL = "IMPOSSIBLE_TRAVEL"
NEW_COUNTRY = "NEW_COUNTRY"
VPN_ACTIVE = "VPN_ACTIVE"

EARTH_RADIUS_KM = 6371.0088
# Half the Earth's circumference: no two points are farther apart.
MAX_DISTANCE_KM = math.pi * EARTH_RADIUS_KM

KINDS = (
    kind(
        UNUSUAL_LOCATION,
        "location",
        (Severity.MEDIUM,),
        "The login is far from every recent login location of the customer.",
        measures=(Measure("distance_km", 0, math.floor(MAX_DISTANCE_KM), "km"),),
    ),
    kind(
        IMPOSSIBLE_TRAVEL,
        "location",
        (Severity.HIGH,),
        "Reaching this login from the previous one would need an impossible speed.",
        measures=(
            Measure("speed_kmh", 0, 1e9, "km/h"),
            Measure("distance_km", 0, math.floor(MAX_DISTANCE_KM), "km"),
        ),
    ),
    kind(
        NEW_COUNTRY, "location", (Severity.MEDIUM,), "The login comes from a country the customer never logged in from."
    ),
    kind(VPN_ACTIVE, "network", (Severity.LOW,), "A VPN is active on the device."),
)


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    half_dphi = (phi2 - phi1) / 2
    half_dlambda = math.radians(lon2 - lon1) / 2
    a = math.sin(half_dphi) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(half_dlambda) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def _apart_km(here: Location, there: PastLocation) -> float:
    """Distance that is surely travelled: the accuracy radii of both fixes taken off."""
    raw = distance_km(here.latitude, here.longitude, there.latitude, there.longitude)
    return max(0.0, raw - (here.accuracy_meters + there.accuracy_meters) / 1000.0)


def _unusual(here: Location, recent: tuple[PastLocation, ...], settings: DetectorSettings) -> list[Finding]:
    nearest = min(_apart_km(here, past) for past in recent)
    if nearest < settings.unusual_location_km:
        return []
    return [
        Finding(
            UNUSUAL_LOCATION,
            Severity.MEDIUM,
            f"the login is {nearest:,.0f} km from the nearest of the customer's recent login locations",
            {"distance_km": f"{nearest:.0f}", "recent_locations": str(len(recent))},
        )
    ]


def _impossible(here: Location, previous: PastLocation, now: float, settings: DetectorSettings) -> list[Finding]:
    apart = _apart_km(here, previous)
    if apart < settings.impossible_travel_min_km:
        return []
    hours = max(now - previous.observed_at, 1.0) / 3600.0
    speed = apart / hours
    if speed < settings.impossible_travel_kmh:
        return []
    seconds = max(0.0, now - previous.observed_at)
    minutes = int(seconds // 60)
    # Below a minute a speed says nothing a person can picture: the distance and the time say it all.
    pace = f", {speed:,.0f} km/h" if minutes >= 1 else ""
    return [
        Finding(
            IMPOSSIBLE_TRAVEL,
            Severity.HIGH,
            f"the previous login was {apart:,.0f} km away, {elapsed(seconds)} ago{pace}",
            {"distance_km": f"{apart:.0f}", "speed_kmh": f"{speed:.0f}", "minutes": str(minutes)},
        )
    ]


def _new_country(country: str, recent: tuple[PastLocation, ...]) -> list[Finding]:
    known = {past.country_code for past in recent if past.country_code}
    if not country or not known or country in known:
        return []
    return [
        Finding(
            NEW_COUNTRY,
            Severity.MEDIUM,
            f"the login comes from {country_name(country)}, a country never seen for this customer",
            {"country": country, "recent_countries": ", ".join(sorted(known))},
        )
    ]


def detect_location(telemetry: LoginTelemetry, context: LoginContext, settings: DetectorSettings) -> list[Finding]:
    findings: list[Finding] = []
    here = telemetry.location
    recent = context.recent_locations
    if here is not None and recent:
        findings += _unusual(here, recent, settings)
        findings += _impossible(here, recent[0], context.now, settings)
        findings += _new_country(here.country_code, recent)
    if telemetry.vpn_active:
        findings.append(Finding(VPN_ACTIVE, Severity.LOW, "a VPN is active on the device"))
    return findings
