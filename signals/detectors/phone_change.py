"""Recent phone-number change: fraudsters move the number first so callbacks reach them."""

from __future__ import annotations

from datetime import UTC, datetime

from signals.context import LoginContext
from signals.findings import Finding, Severity

PHONE_NUMBER_CHANGED_RECENTLY = "PHONE_NUMBER_CHANGED_RECENTLY"


def detect_recent_phone_change(context: LoginContext) -> list[Finding]:
    change = context.recent_phone_change
    if change is None:
        return []
    days = max(0, int((context.now - change.changed_at) // 86400))
    when = "today" if days == 0 else ("1 day ago" if days == 1 else f"{days} days ago")
    return [
        Finding(
            code=PHONE_NUMBER_CHANGED_RECENTLY,
            severity=Severity.MEDIUM,
            summary=f"the customer's phone number was changed {when}",
            evidence={
                "changed_at": datetime.fromtimestamp(change.changed_at, UTC).isoformat(timespec="seconds"),
                "kind": change.kind,
                "source": change.source,
            },
        )
    ]
