"""The inventory digest against its published vector and its manual's rules."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from google.protobuf import json_format

from gateway.client import with_inventory_digest
from gateway.generated.mtsg.v1 import telemetry_pb2
from gateway.login.inventory_digest import canonical_inventory, inventory_digest, is_digest

DOCS = Path(__file__).resolve().parents[3] / "docs"
VECTOR = json.loads((DOCS / "inventory-digest-vector.json").read_text(encoding="utf-8"))


def _apps(dicts: list[dict[str, object]]) -> list[telemetry_pb2.InstalledApp]:
    return [json_format.ParseDict(each, telemetry_pb2.InstalledApp()) for each in dicts]


def test_the_published_vector_hashes_to_its_digest() -> None:
    apps = _apps(VECTOR["installed_apps"])
    assert canonical_inventory(apps).decode("utf-8") == VECTOR["canonical"]
    assert inventory_digest(apps) == VECTOR["inventory_digest"]
    assert hashlib.sha256(VECTOR["canonical"].encode("utf-8")).hexdigest() == VECTOR["inventory_digest"]
    assert inventory_digest([]) == VECTOR["empty_inventory_digest"]


def test_the_manual_quotes_the_vector_as_it_is() -> None:
    manual = (DOCS / "INVENTORY_DIGEST.md").read_text(encoding="utf-8")
    assert VECTOR["canonical"] in manual
    assert VECTOR["inventory_digest"] in manual
    assert VECTOR["empty_inventory_digest"] in manual


def test_one_app_is_written_as_the_manual_says() -> None:
    """Written out by hand from the manual's table, not by the implementation."""
    app = telemetry_pb2.InstalledApp(
        package_name="a.b",
        label='x"\\\t\x1f/é',
        version_code=-3,
        installer_class=telemetry_pb2.INSTALLER_CLASS_OEM_STORE,
        granted_permissions=["p.Z", "p.A", "p.A"],
        device_admin=True,
    )
    app.last_update_time.FromSeconds(5)
    expected = (
        '["mtsg-inventory-v1",[["a.b","x\\"\\\\\\t\\u001f/é","",-3,"",2,"","","",false,null,[5,0],'
        '["p.A","p.A","p.Z"],false,true,false]]]'
    )
    assert canonical_inventory([app]).decode("utf-8") == expected


def test_running_foreground_and_order_leave_the_digest_alone() -> None:
    apps = _apps(VECTOR["installed_apps"])
    quiet = []
    for app in reversed(apps):
        copy = telemetry_pb2.InstalledApp()
        copy.CopyFrom(app)
        copy.running = not app.running
        copy.foreground = not app.foreground
        copy.granted_permissions.reverse()
        quiet.append(copy)
    assert inventory_digest(quiet) == inventory_digest(apps)


@pytest.mark.parametrize(
    "field",
    [f.name for f in telemetry_pb2.InstalledApp.DESCRIPTOR.fields if f.name not in ("running", "foreground")],
)
def test_every_inventory_field_changes_the_digest(field: str) -> None:
    (app,) = _apps(VECTOR["installed_apps"][2:])
    before = inventory_digest([app])
    descriptor = telemetry_pb2.InstalledApp.DESCRIPTOR.fields_by_name[field]
    if descriptor.message_type is not None:
        getattr(app, field).nanos += 1
    elif field == "granted_permissions":
        getattr(app, field).append("android.permission.READ_SMS")
    elif descriptor.type == descriptor.TYPE_BOOL:
        setattr(app, field, not getattr(app, field))
    elif descriptor.type == descriptor.TYPE_STRING:
        setattr(app, field, getattr(app, field) + "x")
    else:
        setattr(app, field, getattr(app, field) + 1)
    assert inventory_digest([app]) != before


def test_two_apps_with_one_name_still_have_one_digest() -> None:
    first = telemetry_pb2.InstalledApp(package_name="a", label="one")
    second = telemetry_pb2.InstalledApp(package_name="a", label="two")
    assert inventory_digest([first, second]) == inventory_digest([second, first])


@pytest.mark.parametrize(
    ("value", "valid"),
    [(VECTOR["inventory_digest"], True), (VECTOR["inventory_digest"].upper(), False), ("ab", False), ("", False)],
)
def test_the_digest_form(value: str, valid: bool) -> None:
    assert is_digest(value) is valid


def test_the_python_client_sends_the_vectors_digest_and_moves_activity_out_of_it() -> None:
    apps = _apps(VECTOR["installed_apps"])
    login = telemetry_pb2.LoginTelemetry(device_id="d", installed_apps=apps)
    login.installed_apps[0].running = True
    login.installed_apps[1].foreground = True
    sent = with_inventory_digest(login)
    assert sent.inventory_digest == VECTOR["inventory_digest"]
    running = sorted(app.package_name for app in login.installed_apps if app.running)
    assert apps[0].package_name in running
    assert list(sent.app_activity.running_packages) == running
    assert apps[1].package_name in sent.app_activity.foreground_packages
    assert len(sent.installed_apps) == len(apps)  # the list goes too: the gateway checks it against the digest
