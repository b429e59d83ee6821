"""Who is calling an admin RPC, as the audit trail records it."""

from __future__ import annotations

import grpc

from gateway.security.access import current_caller


def caller_actor(context: grpc.aio.ServicerContext) -> str:
    """The authenticated identity and how it proved itself, with the peer address it called from."""
    caller = current_caller()
    who = caller.describe() if caller is not None else "unknown caller"
    return f"{who} from {context.peer()}"
