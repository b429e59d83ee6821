"""``mtsg check``: send a login (from a file or a shipped example) and show the verdict.

A check file is either a bare CheckLoginRequest in proto JSON, or an envelope
``{"description", "phone_number_changes": [...], "login": {...}}`` whose changes
are reported first.  Missing request_id, nonce, collected_at and changed_at are
filled in (fresh id, random nonce, now), and ``{run_id}`` in any string becomes a
value unique to this run, so the examples can be repeated.

With a digests file, the login is sent as an SDK that uses inventory digests sends it
(``MtsgClient.check_login_by_digest``): the file remembers, per device, the digest the
gateway acknowledged, so a second check of an unchanged inventory sends the digest alone.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import uuid
from collections.abc import MutableMapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from gateway.client import MtsgClient
from gateway.generated.mtsg.v1 import common_pb2, event_service_pb2, threat_signal_service_pb2
from gateway.security.client_credentials import ClientCredentials

EXAMPLES = ("clean-login", "remote-control-during-call", "phone-changed-new-device")


class CheckFileError(ValueError):
    """The check file cannot be read or does not follow the contract."""


@dataclass(frozen=True)
class CheckPlan:
    phone_number_changes: list[event_service_pb2.PhoneNumberChange]
    login: threat_signal_service_pb2.CheckLoginRequest


def _substitute(value: Any, run_id: str) -> Any:
    if isinstance(value, str):
        return value.replace("{run_id}", run_id)
    if isinstance(value, list):
        return [_substitute(item, run_id) for item in value]
    if isinstance(value, dict):
        return {key: _substitute(item, run_id) for key, item in value.items()}
    return value


def example_text(name: str) -> str:
    if name not in EXAMPLES:
        raise CheckFileError(f"unknown example {name!r}; choose one of: {', '.join(EXAMPLES)}")
    return (resources.files("gateway") / "examples" / f"{name}.json").read_text(encoding="utf-8")


def read_check_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CheckFileError(f"cannot read {path}: {error}") from error


def build_plan(text: str, *, now: float | None = None, run_id: str | None = None) -> CheckPlan:
    """Parse a check file's text into the calls to make."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise CheckFileError(f"not valid JSON: {error}") from error
    except RecursionError:
        raise CheckFileError("not readable JSON: nested too deeply") from None
    if not isinstance(document, dict):
        raise CheckFileError("the top level must be a JSON object")
    document = _substitute(document, run_id or uuid.uuid4().hex[:12])
    now = time.time() if now is None else now
    login_json = document.get("login", document)
    try:
        login = json_format.ParseDict(login_json, threat_signal_service_pb2.CheckLoginRequest())
        changes = [
            json_format.ParseDict(change, event_service_pb2.PhoneNumberChange())
            for change in document.get("phone_number_changes", [])
            if "login" in document
        ]
    except json_format.ParseError as error:
        raise CheckFileError(f"does not match the mtsg.v1 contract: {error}") from error
    if not login.request_id:
        login.request_id = uuid.uuid4().hex
    telemetry = login.telemetry
    if not telemetry.HasField("collected_at"):
        telemetry.collected_at.FromNanoseconds(int(now * 1e9))
    if not telemetry.nonce:
        telemetry.nonce = secrets.token_hex(16)
    for change in changes:
        if not change.HasField("changed_at"):
            change.changed_at.FromNanoseconds(int(now * 1e9))
    return CheckPlan(changes, login)


def read_held_digests(path: Path) -> dict[str, str]:
    """The digests file: device_id -> the inventory digest the gateway holds; empty when it does not exist."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckFileError(f"cannot read the digests file {path}: {error}") from error
    if not isinstance(document, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in document.items()
    ):
        raise CheckFileError(f"the digests file {path} must be a JSON object of device ids to digests")
    return document


def write_held_digests(path: Path, digests: MutableMapping[str, str]) -> None:
    """Replace the digests file whole, so a failed write leaves the previous one."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(dict(digests), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, path)


async def run_plan(
    target: str,
    plan: CheckPlan,
    timeout: float,
    credentials: ClientCredentials | None = None,
    held_digests: MutableMapping[str, str] | None = None,
) -> threat_signal_service_pb2.CheckLoginResponse:
    """Phone-number changes first (the telco role), then the login (the app role), by digest with ``held_digests``."""
    async with MtsgClient(target, timeout=timeout, credentials=credentials, held_digests=held_digests) as client:
        if plan.phone_number_changes:
            await client.report_phone_number_changes(plan.phone_number_changes)
        if held_digests is not None:
            return await client.check_login_by_digest(plan.login.telemetry, request_id=plan.login.request_id)
        return await client.check_login_request(plan.login)


def _enum_label(name: str, prefix: str) -> str:
    return name.removeprefix(prefix).replace("_", " ").lower()


def format_verdict(response: threat_signal_service_pb2.CheckLoginResponse) -> str:
    """The verdict as a person reads it."""
    action = common_pb2.Action.Name(response.action).removeprefix("ACTION_")
    lines = [f"{action}   risk {response.risk_score}/100   verdict {response.verdict_id}", f"  {response.summary}"]
    if response.action == common_pb2.ACTION_STEP_UP:
        method = common_pb2.StepUpMethod.Name(response.step_up_method)
        lines.append(f"  step-up method: {method.removeprefix('STEP_UP_METHOD_')}")
    if response.freeze_scopes:
        scopes = ", ".join(
            _enum_label(common_pb2.FreezeScope.Name(scope), "FREEZE_SCOPE_") for scope in response.freeze_scopes
        )
        lines.append(f"  freeze: {scopes}")
    decided_by = f"scenario {response.scenario_id}" if response.scenario_id else "no scenario"
    lines.append(f"  decided by {decided_by} (policy {response.policy_version})")
    if response.explanation:
        lines.append(f"  why: {response.explanation}")
    if response.inventory_digest:
        lines.append(f"  inventory held by digest {response.inventory_digest}")
    if response.reasons:
        lines.append("  reasons:")
    for reason in response.reasons:
        severity = common_pb2.Severity.Name(reason.severity).removeprefix("SEVERITY_")
        lines.append(f"    [{severity}] {reason.code}: {reason.message}")
        if reason.evidence:
            evidence = ", ".join(f"{key}={value}" for key, value in sorted(reason.evidence.items()))
            lines.append(f"        evidence: {evidence}")
    return "\n".join(lines)


def verdict_json(response: threat_signal_service_pb2.CheckLoginResponse) -> str:
    return json.dumps(
        json_format.MessageToDict(
            response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        ),
        indent=2,
        sort_keys=True,
    )
