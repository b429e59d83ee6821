"""Malicious app: an installed app is in the registry the security team runs.

The registry (blocklists.Matcher) answers per indicator; a person wants one line
per app, so matches are grouped by app and the strongest one speaks for it.
The finding code carries the category, because the playbook acts on categories:
a voice-phishing app freezes the account, stalkerware asks for a step-up.
"""

from __future__ import annotations

from itertools import groupby

from blocklists.entry import Category, EntrySeverity
from blocklists.matcher import Match, Matcher
from signals.context import LoginContext
from signals.findings import Finding, Severity
from signals.kinds import kind
from signals.telemetry import LoginTelemetry

MALICIOUS_APP_CODES = {category: f"MALICIOUS_APP_{category.name}" for category in Category}
_SEVERITY = {
    EntrySeverity.LOW: Severity.LOW,
    EntrySeverity.MEDIUM: Severity.MEDIUM,
    EntrySeverity.HIGH: Severity.HIGH,
    EntrySeverity.CRITICAL: Severity.CRITICAL,
}
_CATEGORY_WORDS = {category: category.value.replace("_", "-") for category in Category}
KINDS = tuple(
    kind(
        code,
        "malicious_app",
        tuple(_SEVERITY.values()),
        f"An installed app matches a {_CATEGORY_WORDS[category]} entry of the registry.",
        per_app=True,
    )
    for category, code in MALICIOUS_APP_CODES.items()
)
_KEY_WORDS = {
    "apk_sha256": "APK hash",
    "cert_sha256": "signing certificate",
    "cert_sha1": "signing certificate (SHA-1)",
    "package_name": "package name",
    "package_and_cert": "package and certificate",
}


def _finding(app_package: str, label: str, matches: list[Match]) -> Finding:
    strongest = max(matches, key=lambda match: _SEVERITY[match.severity])
    name = strongest.family or label or app_package
    by = sorted({_KEY_WORDS[match.key_type.value] for match in matches})
    sources = sorted({match.source for match in matches})
    return Finding(
        code=MALICIOUS_APP_CODES[strongest.category],
        severity=_SEVERITY[strongest.severity],
        summary=f"the {_CATEGORY_WORDS[strongest.category]} app {name} is installed ({app_package})",
        evidence={
            "package": app_package,
            "family": strongest.family,
            "category": strongest.category.value,
            "matched_by": ", ".join(by),
            "sources": ", ".join(sources),
            "entry_ids": ", ".join(sorted({match.entry_id for match in matches})[:5]),
        },
    )


def detect_malicious_apps(telemetry: LoginTelemetry, context: LoginContext, blocklist: Matcher) -> list[Finding]:
    matches = blocklist.match(telemetry.installed_apps, context.now, telemetry.screening)
    if not matches:
        return []
    labels = {app.package_name: app.label for app in telemetry.installed_apps}
    ordered = sorted(matches, key=lambda match: match.app_package)
    return [
        _finding(package, labels.get(package, ""), list(group))
        for package, group in groupby(ordered, key=lambda match: match.app_package)
    ]
