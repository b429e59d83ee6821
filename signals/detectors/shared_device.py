"""Shared device: one phone used to log in to many customers' accounts.

Mule operations and call-centre fraud rings run many victims' accounts from a
few handsets; a customer's own phone rarely serves more than a family.
"""

from __future__ import annotations

from signals.context import LoginContext
from signals.detector_settings import DetectorSettings
from signals.findings import Finding, Severity
from signals.kinds import Measure, kind
from signals.wording import counted

SHARED_DEVICE = "SHARED_DEVICE"

KINDS = (
    kind(
        SHARED_DEVICE,
        "device",
        (Severity.MEDIUM, Severity.HIGH),
        "The device was used by other customers within the window; HIGH at twice the floor.",
        measures=(Measure("other_customers", 1, 1_000_000, "customers"),),
    ),
)


def detect_shared_device(context: LoginContext, settings: DetectorSettings) -> list[Finding]:
    others = context.other_customers_on_device
    floor = settings.shared_device_min_other_customers
    if others < floor:
        return []
    days = f"{settings.shared_device_window_days:g}"
    window = counted(settings.shared_device_window_days, "day")
    return [
        Finding(
            SHARED_DEVICE,
            Severity.HIGH if others >= 2 * floor else Severity.MEDIUM,
            f"this device was used by {counted(others, 'other customer')} in the last {window}",
            {"other_customers": str(others), "window_days": days},
        )
    ]
