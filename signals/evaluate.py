"""One call that runs every detector over a login and applies the policy."""

from __future__ import annotations

from dataclasses import dataclass, field

from blocklists.matcher import Matcher
from signals.context import LoginContext
from signals.detectors.active_call import detect_active_call
from signals.detectors.device_integrity import detect_device_integrity
from signals.detectors.location import detect_location
from signals.detectors.malicious_app import detect_malicious_apps
from signals.detectors.new_device import detect_new_device
from signals.detectors.phone_change import detect_recent_phone_change
from signals.detectors.shared_device import detect_shared_device
from signals.detectors.sideloaded_app import detect_sideloaded_apps
from signals.detectors.split_install import detect_split_install
from signals.findings import Finding
from signals.policy import Decision, Policy, decide
from signals.remote_control import RemoteControlCatalog, detect_remote_control
from signals.telemetry import LoginTelemetry


@dataclass(frozen=True, slots=True)
class Knowledge:
    """Everything the brain knows that is not about this customer: catalogues, registry and policy."""

    policy: Policy
    remote_control: RemoteControlCatalog
    blocklist: Matcher = field(default_factory=Matcher.empty)


def detect(telemetry: LoginTelemetry, context: LoginContext, knowledge: Knowledge) -> list[Finding]:
    settings = knowledge.policy.detectors
    return [
        *detect_malicious_apps(telemetry, context, knowledge.blocklist),
        *detect_remote_control(telemetry, knowledge.remote_control),
        *detect_sideloaded_apps(telemetry),
        *detect_split_install(telemetry, context),
        *detect_active_call(telemetry, context),
        *detect_device_integrity(telemetry),
        *detect_new_device(telemetry, context),
        *detect_shared_device(context, settings),
        *detect_location(telemetry, context, settings),
        *detect_recent_phone_change(context),
    ]


def evaluate(telemetry: LoginTelemetry, context: LoginContext, knowledge: Knowledge) -> Decision:
    return decide(detect(telemetry, context, knowledge), knowledge.policy)
