"""Every finding code the brain can emit, gathered from the detectors that emit them."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from signals import remote_control
from signals.detectors import (
    active_call,
    device_integrity,
    location,
    malicious_app,
    new_device,
    phone_change,
    shared_device,
    sideloaded_app,
    split_install,
)
from signals.findings import Severity
from signals.kinds import FindingKind

_ALL = (
    *malicious_app.KINDS,
    *remote_control.KINDS,
    *sideloaded_app.KINDS,
    *split_install.KINDS,
    *new_device.KINDS,
    *shared_device.KINDS,
    *location.KINDS,
    *phone_change.KINDS,
    *device_integrity.KINDS,
    *active_call.KINDS,
)
FINDING_KINDS: Mapping[str, FindingKind] = MappingProxyType({found.code: found for found in _ALL})
CATEGORIES = frozenset(found.category for found in _ALL)
SEVERITY_NAMES: Mapping[str, Severity] = MappingProxyType({severity.name.lower(): severity for severity in Severity})
