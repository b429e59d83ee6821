"""The detectors' tunable floors, part of the policy document so they change without a restart.

A detector reports anything past its floor; a scenario may ask for more with a
threshold on the finding's measures.  History windows also tell the gateway how
much of the customer's past to load for one login.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    # A login this far (km) from every recent login location is unusual.
    unusual_location_km: float = 300.0
    # Moving faster than this (km/h) between consecutive located logins is impossible travel;
    # 900 km/h is an airliner's cruising speed.
    impossible_travel_kmh: float = 900.0
    # Below this distance (km) speed is not judged: GPS noise over a few minutes looks fast.
    impossible_travel_min_km: float = 100.0
    # Which past logins count as "recent" for location: the last N within so many days.
    location_history_days: float = 90.0
    location_history_logins: int = 20
    # A device seen for at least this many other customers within the window is shared.
    shared_device_min_other_customers: int = 2
    shared_device_window_days: float = 30.0
