"""How a client proves itself to the gateway: TLS (optionally with its own certificate) and a bearer token.

The CLI, the bench and the tests build channels only through here, so every tool
speaks to a secured gateway the same way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

TOKEN_ENV = "MTSG_TOKEN"


class ClientCredentialsError(ValueError):
    """A credential file is missing or unreadable; the message names it."""


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ClientCredentialsError(f"cannot read the {what} {path}: {error}") from None


@dataclass(frozen=True)
class ClientCredentials:
    """TLS when ``ca_file`` is set, a client certificate when ``cert_file``/``key_file`` are, ``token`` as Bearer."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    token: str = ""
    # Name to verify in the server's certificate when it differs from the target's host.
    server_name: str = ""

    @classmethod
    def from_options(
        cls,
        ca_file: Path | None,
        cert_file: Path | None,
        key_file: Path | None,
        token_file: Path | None,
        server_name: str = "",
    ) -> ClientCredentials:
        """From CLI flags; the token comes from ``token_file`` or else the MTSG_TOKEN environment variable."""
        if bool(cert_file) != bool(key_file):
            raise ClientCredentialsError("--cert and --key must be given together")
        if cert_file and not ca_file:
            raise ClientCredentialsError("a client certificate needs TLS: give --ca too")
        token = _read(token_file, "token file").decode("utf-8", "replace").strip() if token_file else ""
        return cls(ca_file, cert_file, key_file, token or os.environ.get(TOKEN_ENV, "").strip(), server_name)

    def metadata(self) -> Sequence[tuple[str, str]]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def channel(self, target: str, options: Sequence[tuple[str, Any]] = ()) -> grpc.aio.Channel:
        options = list(options)
        if self.ca_file is None:
            return grpc.aio.insecure_channel(target, options=options, interceptors=self._interceptors())
        if self.server_name:
            options.append(("grpc.ssl_target_name_override", self.server_name))
        ssl = grpc.ssl_channel_credentials(
            _read(self.ca_file, "CA file"),
            _read(self.key_file, "client key") if self.key_file else None,
            _read(self.cert_file, "client certificate") if self.cert_file else None,
        )
        return grpc.aio.secure_channel(target, ssl, options=options, interceptors=self._interceptors())

    def _interceptors(self) -> list[grpc.aio.ClientInterceptor]:
        if not self.token:
            return []
        kinds = (_UnaryUnaryToken, _UnaryStreamToken, _StreamUnaryToken, _StreamStreamToken)
        return [kind(self.metadata()) for kind in kinds]


class _WithToken:
    """Adds the bearer token to a call's metadata (works on plain-text channels too, unlike call credentials)."""

    def __init__(self, metadata: Sequence[tuple[str, str]]) -> None:
        self._metadata = tuple(metadata)

    def _with_metadata(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), *self._metadata)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


# grpc.aio files each interceptor under one call kind only, so each kind needs its own class.
class _UnaryUnaryToken(_WithToken, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: grpc.aio.ClientCallDetails, request: Any) -> Any:
        return await continuation(self._with_metadata(details), request)


class _UnaryStreamToken(_WithToken, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: grpc.aio.ClientCallDetails, request: Any) -> Any:
        return await continuation(self._with_metadata(details), request)


class _StreamUnaryToken(_WithToken, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self, continuation: Any, details: grpc.aio.ClientCallDetails, requests: Any
    ) -> Any:
        return await continuation(self._with_metadata(details), requests)


class _StreamStreamToken(_WithToken, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
        self, continuation: Any, details: grpc.aio.ClientCallDetails, requests: Any
    ) -> Any:
        return await continuation(self._with_metadata(details), requests)
