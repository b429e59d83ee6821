"""Recorded login cases for `mtsg policy test`: telemetry plus the history the gateway would have known.

A case file is JSON::

    {
      "description": "AnyDesk running during a call from an unknown number",
      "login": { ...a CheckLoginRequest in proto JSON (or an `mtsg check` envelope)... },
      "history": {
        "known_devices": ["device-1"],
        "phone_change_days_ago": 2,
        "recent_locations": [{"latitude": 37.56, "longitude": 126.97, "hours_ago": 20, "country_code": "KR"}],
        "other_customers_on_device": 0,
        "previous_apps": ["com.kakao.talk"], "previous_apps_hours_ago": 30
      },
      "expect": {"action": "FREEZE", "scenario": "remote-control-during-call"}
    }

``history`` and ``expect`` are optional.  The telemetry is validated exactly as
CheckLogin validates it, so a case that passes here is one the gateway accepts.
The examples shipped with `mtsg check` are valid cases (their phone-number
changes count as made today).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.cli.check import CheckFileError, build_plan
from gateway.login.validation import Limits, parse_check_login
from gateway.violations import InvalidRequestError
from signals.context import DeviceInventory, LoginContext, PastLocation, PhoneNumberChangeSummary
from signals.telemetry import LoginTelemetry

_ACTIONS = ("ALLOW", "STEP_UP", "FREEZE")


class CaseError(ValueError):
    """A case file cannot be read or does not describe a login; the message names the file."""


@dataclass(frozen=True, slots=True)
class Expectation:
    action: str = ""
    scenario: str | None = None


@dataclass(frozen=True, slots=True)
class PolicyCase:
    name: str
    description: str
    telemetry: LoginTelemetry
    context: LoginContext
    expect: Expectation | None


def _number(history: dict[str, Any], key: str, default: float) -> float:
    value = history.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CaseError(f"history.{key} must be a number, got {value!r}")
    return float(value)


def _context(history: dict[str, Any], now: float, phone_changed_today: bool) -> LoginContext:
    devices = history.get("known_devices", [])
    if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
        raise CaseError("history.known_devices must be a list of device ids")
    change = None
    if "phone_change_days_ago" in history or phone_changed_today:
        days = _number(history, "phone_change_days_ago", 0)
        change = PhoneNumberChangeSummary(now - days * 86400, "case", "policy test")
    locations = []
    for index, raw in enumerate(history.get("recent_locations", [])):
        if not isinstance(raw, dict):
            raise CaseError(f"history.recent_locations[{index}] must be an object")
        locations.append(
            PastLocation(
                observed_at=now - _number(raw, "hours_ago", 24) * 3600,
                latitude=_number(raw, "latitude", 0),
                longitude=_number(raw, "longitude", 0),
                accuracy_meters=_number(raw, "accuracy_meters", 0),
                country_code=str(raw.get("country_code", "")),
            )
        )
    locations.sort(key=lambda past: past.observed_at, reverse=True)
    inventory = None
    if "previous_apps" in history:
        apps = history["previous_apps"]
        if not isinstance(apps, list) or not all(isinstance(a, str) for a in apps):
            raise CaseError("history.previous_apps must be a list of package names")
        observed = now - _number(history, "previous_apps_hours_ago", 24) * 3600
        inventory = DeviceInventory(observed, frozenset(apps))
    return LoginContext(
        now=now,
        known_device_ids=frozenset(devices),
        recent_phone_change=change,
        recent_locations=tuple(locations),
        other_customers_on_device=int(_number(history, "other_customers_on_device", 0)),
        previous_inventory=inventory,
    )


def _expectation(raw: Any) -> Expectation | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise CaseError('expect must be an object like {"action": "FREEZE", "scenario": "..."}')
    action = str(raw.get("action", "")).upper()
    if action and action not in _ACTIONS:
        raise CaseError(f"expect.action must be one of {', '.join(_ACTIONS)}, got {raw.get('action')!r}")
    scenario = raw.get("scenario")
    return Expectation(action, str(scenario) if scenario is not None else None)


def read_case(path: Path, limits: Limits, now: float) -> PolicyCase:
    try:
        text = path.read_text(encoding="utf-8")
        document = json.loads(text)
        if not isinstance(document, dict):
            raise CaseError("the top level must be a JSON object")
        plan = build_plan(text, now=now, run_id="case")
        telemetry = parse_check_login(plan.login, limits, now).telemetry
        history = document.get("history", {})
        if not isinstance(history, dict):
            raise CaseError("history must be an object")
        context = _context(history, now, phone_changed_today=bool(plan.phone_number_changes))
        return PolicyCase(
            name=path.stem,
            description=str(document.get("description", "")),
            telemetry=telemetry,
            context=context,
            expect=_expectation(document.get("expect")),
        )
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, CheckFileError, CaseError) as error:
        raise CaseError(f"{path}: {error}") from error
    except InvalidRequestError as error:
        raise CaseError(f"{path}: the login would be refused by CheckLogin: {error}") from error
    except RecursionError:
        raise CaseError(f"{path}: not readable JSON: nested too deeply") from None


def read_cases(directory: Path, limits: Limits, now: float) -> list[PolicyCase]:
    """Every *.json case under ``directory``, in name order; refuses an empty or missing directory."""
    if not directory.is_dir():
        raise CaseError(f"{directory} is not a directory of *.json cases")
    paths = sorted(directory.glob("*.json"))
    if not paths:
        raise CaseError(f"{directory} holds no *.json cases")
    return [read_case(path, limits, now) for path in paths]
