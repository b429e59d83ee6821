"""The guard every call passes: who is calling (authentication) and may they call this (authorization).

Roles are per service, the way banks split duty: the app checks logins, the telco
reports number changes, the security team edits blocklists and policy, core banking
consumes commands.  Health stays open (load balancers and kubelets probe it without
credentials); reflection needs any identity.  The caller found here is what the audit
trail records for admin changes.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable

import grpc
import structlog

from gateway.errors import abort_with, failure, reason_name
from gateway.generated.mtsg.v1.error_reason_pb2 import (
    ERROR_REASON_INVALID_TOKEN,
    ERROR_REASON_MISSING_ROLE,
    ERROR_REASON_NO_CREDENTIALS,
    ERROR_REASON_UNKNOWN_CERTIFICATE,
    ErrorReason,
)
from gateway.observability.metrics import Metrics
from gateway.security.identities import ROLES, Identity, IdentityBook

log = structlog.get_logger(__name__)

SERVICE_ROLES = {
    "mtsg.v1.ThreatSignalService": "app",
    "mtsg.v1.EventService": "telco",
    "mtsg.v1.BlocklistService": "secops",
    "mtsg.v1.PolicyService": "secops",
    "mtsg.v1.CommandFeedService": "core",
}
OPEN_SERVICES = frozenset({"grpc.health.v1.Health"})
INSECURE_IDENTITY = Identity("anonymous", frozenset(ROLES), "insecure")
_BEARER = "bearer "

_caller: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("mtsg_caller", default=None)


def current_caller() -> Identity | None:
    """The identity of the call being served (set by the guard), None outside a call or on an open service."""
    return _caller.get()


def _service(method: str) -> str:
    return method.split("/")[1] if method.count("/") == 2 else method


def _bearer_token(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            return value[len(_BEARER) :].strip() if value.lower().startswith(_BEARER) else ""
    return None


class AccessGuard:
    """Authenticates by bearer token or verified client certificate, then checks the service's role.

    ``identities`` is read at every call, so a changed identities file (a new app token,
    a revoked insider) takes effect without a restart.  ``None`` is the insecure mode:
    every caller is ``anonymous`` with every role.
    """

    def __init__(self, identities: Callable[[], IdentityBook] | None, metrics: Metrics) -> None:
        self._identities = identities
        self._metrics = metrics

    async def _refuse(
        self, context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str, reason: ErrorReason
    ) -> None:
        name = reason_name(reason)
        self._metrics.auth_rejections.labels(reason=name.lower()).inc()
        log.warning("call refused", reason=name, peer=context.peer(), detail=message)
        await abort_with(context, failure(code, message, reason))

    async def _authenticate(self, context: grpc.aio.ServicerContext) -> Identity:
        assert self._identities is not None
        book = self._identities()
        token = _bearer_token(context)
        if token is not None:
            identity = book.by_token(token) if token else None
            if identity is None:
                await self._refuse(
                    context,
                    grpc.StatusCode.UNAUTHENTICATED,
                    "the bearer token is not valid",
                    ERROR_REASON_INVALID_TOKEN,
                )
            assert identity is not None
            return identity
        auth_context = context.auth_context()
        if auth_context.get("x509_common_name") or auth_context.get("x509_subject"):
            identity = book.by_certificate(auth_context)
            if identity is None:
                subject = b",".join(auth_context.get("x509_subject", ())).decode("utf-8", "replace")
                await self._refuse(
                    context,
                    grpc.StatusCode.UNAUTHENTICATED,
                    f"the client certificate ({subject}) names no identity of this gateway",
                    ERROR_REASON_UNKNOWN_CERTIFICATE,
                )
            assert identity is not None
            return identity
        await self._refuse(
            context,
            grpc.StatusCode.UNAUTHENTICATED,
            "no credentials: send 'authorization: Bearer <token>' metadata or a client certificate",
            ERROR_REASON_NO_CREDENTIALS,
        )
        raise AssertionError("unreachable: refused")

    async def admit(self, method: str, context: grpc.aio.ServicerContext) -> Callable[[], None] | None:
        """A guard of the interceptor: refuses the call, or admits it with its caller known to the call."""
        service = _service(method)
        if service in OPEN_SERVICES:
            return None
        identity = INSECURE_IDENTITY if self._identities is None else await self._authenticate(context)
        role = SERVICE_ROLES.get(service)
        if role is not None and role not in identity.roles:
            await self._refuse(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"{identity.name} may not call {service}: it needs the role {role!r}"
                f" (has {', '.join(sorted(identity.roles))})",
                ERROR_REASON_MISSING_ROLE,
            )
        token = _caller.set(identity)
        bound = structlog.contextvars.bind_contextvars(caller=identity.name)

        def release() -> None:
            structlog.contextvars.reset_contextvars(**bound)
            _caller.reset(token)

        return release
