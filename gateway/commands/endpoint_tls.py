"""TLS towards core banking: which CA vouches for its endpoints, and the certificate the gateway shows them.

Core banking sits on the bank's own PKI far more often than on a public CA, and often asks its
callers for a client certificate (mTLS).  Without a CA file the push trusts the public CAs httpx
ships; with one, only that bundle.  The files are read once, at start: a rotated certificate is
taken up by a restart, which the Kubernetes rollout that mounts it does anyway.
"""

from __future__ import annotations

import ssl
from pathlib import Path


class EndpointTLSError(ValueError):
    """A CA bundle or client certificate for the push cannot be used; the message names the file."""


def endpoint_tls(ca_file: str, client_cert_file: str, client_key_file: str) -> ssl.SSLContext | None:
    """The TLS context the push connects with, or None for httpx's own (public CAs, no client certificate)."""
    if not (ca_file or client_cert_file):
        return None
    try:
        context = ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as error:
        raise EndpointTLSError(f"commands.ca_file {ca_file}: not a readable PEM CA bundle ({error})") from error
    if client_cert_file:
        for setting, path in (("client_cert_file", client_cert_file), ("client_key_file", client_key_file)):
            if not Path(path).is_file():
                raise EndpointTLSError(f"commands.{setting} {path}: no such file")
        try:
            context.load_cert_chain(client_cert_file, client_key_file)
        except (OSError, ssl.SSLError) as error:
            raise EndpointTLSError(
                f"commands.client_cert_file {client_cert_file} and client_key_file {client_key_file}:"
                f" not a PEM certificate and its private key ({error})"
            ) from error
    return context
