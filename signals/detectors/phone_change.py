"""Recent phone-number change: fraudsters move the number first so callbacks reach them."""

from __future__ import annotations

from datetime import UTC, datetime

from signals.context import LoginContext
from signals.findings import Finding, Severity
from signals.kinds import Measure, kind

PHONE_NUMBER_CHANGED_RECENTLY = "PHONE_NUMBER_CHANGED_RECENTLY"

KINDS = (
    kind(
        PHONE_NUMBER_CHANGED_RECENTLY,
        "phone_number",
        (Severity.MEDIUM,),
        "The telco or CRM reported a phone-number change inside the configured window.",
        measures=(Measure("days_ago", 0, 3650, "days"),),
    ),
)


def _known(value: str) -> bool:
    return bool(value) and value != "unspecified"


def detect_recent_phone_change(context: LoginContext) -> list[Finding]:
    change = context.recent_phone_change
    if change is None:
        return []
    elapsed_days = max(0.0, (context.now - change.changed_at) / 86400)
    days = int(elapsed_days)
    when = "today" if days == 0 else ("1 day ago" if days == 1 else f"{days} days ago")
    return [
        Finding(
            code=PHONE_NUMBER_CHANGED_RECENTLY,
            severity=Severity.MEDIUM,
            summary=f"the customer's phone number was changed {when}",
            evidence={
                "changed_at": datetime.fromtimestamp(change.changed_at, UTC).isoformat(timespec="seconds"),
                "days_ago": f"{elapsed_days:.1f}",
                # A reporter that left how or where out told us nothing: say nothing rather than "unspecified".
                **{name: value for name, value in (("kind", change.kind), ("source", change.source)) if _known(value)},
            },
        )
    ]
