"""TLS for the gRPC port from PEM files, picked up again when the files change.

grpc asks ``dynamic_ssl_server_credentials`` for a configuration at every handshake:
we answer with a new one only when the certificate, key or client CA file changed
(certificate renewal by cert-manager or an operator), so connections made after a
renewal use the new certificate and those already open keep theirs.  With a client CA
every client must present a certificate: grpc's Python API can require and verify one
or not ask at all, so there is no "optional" mTLS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
import structlog
from cryptography import x509

from gateway.config import ServerConfig
from gateway.security.file_watch import WatchedFiles

log = structlog.get_logger(__name__)


class TlsFileError(RuntimeError):
    """A certificate, key or CA file cannot be read or is not PEM."""


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None

    @classmethod
    def of(cls, server: ServerConfig) -> TlsFiles | None:
        if not server.tls_cert_file:
            return None
        return cls(
            Path(server.tls_cert_file),
            Path(server.tls_key_file),
            Path(server.tls_client_ca_file) if server.tls_client_ca_file else None,
        )

    @property
    def paths(self) -> tuple[Path, ...]:
        return (self.cert, self.key) + ((self.client_ca,) if self.client_ca else ())


def _pem(path: Path, marker: bytes) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise TlsFileError(f"cannot read {path}: {error}") from None
    if b"-----BEGIN " not in data or marker not in data:
        raise TlsFileError(f"{path} holds no PEM {marker.decode().strip('- ')}")
    return data


@dataclass(frozen=True)
class _Served:
    configuration: grpc.ServerCertificateConfiguration
    # The served certificate's notAfter (seconds since the epoch): renewals that stall show on /metrics.
    expires_at: float


def _expiry(chain: bytes, path: Path) -> float:
    """When the first certificate of the chain, the server's own, stops being valid."""
    try:
        certificate = x509.load_pem_x509_certificate(chain)
    except ValueError as error:
        raise TlsFileError(f"{path} holds no readable certificate: {error}") from None
    return certificate.not_valid_after_utc.timestamp()


def _certificate_configuration(files: TlsFiles) -> _Served:
    key = _pem(files.key, b"PRIVATE KEY-----")
    chain = _pem(files.cert, b"CERTIFICATE-----")
    client_ca = _pem(files.client_ca, b"CERTIFICATE-----") if files.client_ca else None
    configuration = grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=client_ca)
    return _Served(configuration, _expiry(chain, files.cert))


class ReloadingServerCredentials:
    """Server credentials whose certificate follows the files; ``reloads`` counts the changes taken."""

    def __init__(self, files: TlsFiles) -> None:
        self._files = files
        self._watched = WatchedFiles(files.paths, lambda: _certificate_configuration(files), "TLS certificate")
        self._served = self._watched.value
        self.credentials = grpc.dynamic_ssl_server_credentials(
            self._served.configuration,
            self._next_configuration,
            require_client_authentication=files.client_ca is not None,
        )

    @property
    def reloads(self) -> int:
        return self._watched.reloads

    @property
    def expires_at(self) -> float:
        """When the certificate in the files (served from the next handshake on) expires, in epoch seconds."""
        return self._watched.value.expires_at

    def _next_configuration(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by grpc before each handshake: a new configuration, or None to keep the current one."""
        served = self._watched.value
        if served is self._served:
            return None
        self._served = served
        return served.configuration
