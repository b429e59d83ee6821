"""From a verdict (or an operator's UNFREEZE) to a command, and from a stored command to what is sent.

The stored body is a serialized ``mtsg.v1.Command`` without sequence and cursor,
which the store assigns; ``to_proto`` puts them back.  The webhook body is
derived from it deterministically, so a redelivery carries the same bytes.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.generated.mtsg.v1 import command_feed_service_pb2, common_pb2, threat_signal_service_pb2
from gateway.store.records import NewCommand, StoredCommand

Command = command_feed_service_pb2.Command

# A verdict's command id is derived from the verdict id: the same verdict can never yield two commands.
_VERDICT_PREFIX = "v_"
COMMAND_PREFIX = "cmd_"
CUSTOMER_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
ALL_SCOPES = (
    common_pb2.FREEZE_SCOPE_TRANSFERS,
    common_pb2.FREEZE_SCOPE_CASH_WITHDRAWAL,
    common_pb2.FREEZE_SCOPE_CARD_LOANS,
)


def type_name(command_type: int) -> str:
    """ "FREEZE_ACCOUNT" for COMMAND_TYPE_FREEZE_ACCOUNT: the name stored and shown to operators."""
    return command_feed_service_pb2.CommandType.Name(command_type).removeprefix("COMMAND_TYPE_")


def _stamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def _new(command: Command, verdict_id: str | None, issued_by: str, endpoints: Sequence[str]) -> NewCommand:
    return NewCommand(
        command_id=command.command_id,
        type=type_name(command.type),
        customer_id=command.customer_id,
        verdict_id=verdict_id,
        created_at=command.created_at.ToNanoseconds() / 1e9,
        issued_by=issued_by,
        body=command.SerializeToString(deterministic=True),
        endpoints=tuple(endpoints),
    )


def command_for_verdict(
    response: threat_signal_service_pb2.CheckLoginResponse, customer_id: str, endpoints: Sequence[str]
) -> NewCommand | None:
    """The command core banking must receive for this verdict; None for ALLOW."""
    if response.action == common_pb2.ACTION_FREEZE:
        command = Command(type=command_feed_service_pb2.COMMAND_TYPE_FREEZE_ACCOUNT)
        command.freeze_scopes.extend(response.freeze_scopes)
    elif response.action == common_pb2.ACTION_STEP_UP:
        command = Command(
            type=command_feed_service_pb2.COMMAND_TYPE_REQUIRE_STEP_UP, step_up_method=response.step_up_method
        )
    else:
        return None
    command.command_id = COMMAND_PREFIX + response.verdict_id.removeprefix(_VERDICT_PREFIX)
    command.customer_id = customer_id
    command.verdict_id = response.verdict_id
    command.reasons.extend(response.reasons)
    command.scenario_id = response.scenario_id
    command.created_at.CopyFrom(response.decided_at)
    return _new(command, response.verdict_id, "gateway", endpoints)


def unfreeze_command(
    customer_id: str,
    reason: str,
    scopes: Sequence[common_pb2.FreezeScope],
    actor: str,
    now: float,
    endpoints: Sequence[str],
) -> NewCommand:
    """The security team lifts a freeze after verifying the customer; the reason is kept for core banking."""
    command = Command(
        command_id=f"{COMMAND_PREFIX}{int(now * 1000):012x}{os.urandom(10).hex()}",
        type=command_feed_service_pb2.COMMAND_TYPE_UNFREEZE_ACCOUNT,
        customer_id=customer_id,
        freeze_scopes=list(scopes or ALL_SCOPES),
        reasons=[
            common_pb2.Reason(
                code="UNFREEZE_BY_SECURITY_TEAM",
                message=reason,
                evidence={"issued_by": actor},
                severity=common_pb2.SEVERITY_INFO,
            )
        ],
        created_at=_stamp(now),
    )
    return _new(command, None, actor, endpoints)


def to_proto(stored: StoredCommand) -> Command:
    command = Command.FromString(stored.body)
    command.sequence = stored.sequence
    command.cursor = stored.cursor
    return command


def event_type(stored: StoredCommand) -> str:
    """The Standard Webhooks event type, e.g. "command.freeze_account"."""
    return f"command.{stored.type.lower()}"


def webhook_body(stored: StoredCommand) -> bytes:
    """The JSON the push sends: Standard Webhooks' {type, timestamp, data} envelope around the command."""
    command = to_proto(stored)
    document = {
        "type": event_type(stored),
        "timestamp": command.created_at.ToJsonString(),
        "data": json_format.MessageToDict(command, preserving_proto_field_name=True),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
