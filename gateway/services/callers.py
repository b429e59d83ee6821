"""Who is calling an admin RPC, as the audit trail records it."""

from __future__ import annotations

import grpc


def peer_actor(context: grpc.aio.ServicerContext) -> str:
    """Until authentication lands (issue 8) the actor is the peer address, marked as unauthenticated."""
    return f"unauthenticated grpc peer {context.peer()}"
