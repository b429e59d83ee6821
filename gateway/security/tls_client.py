"""TLS for mtsg's own outbound calls: which CA vouches for the server, and the certificate mtsg shows it.

Core banking and a bank's internal feed servers sit on the bank's own PKI far more often than on
a public CA, and may ask their callers for a client certificate (mTLS).  Without a CA file a call
trusts the public CAs httpx ships; with one, only that bundle.  The files are read once, at start:
a renewed certificate is taken up by a restart, which the rollout that mounts it does anyway.
"""

from __future__ import annotations

import ssl
from pathlib import Path


class ClientTLSError(ValueError):
    """A CA bundle or client certificate cannot be used; the message names the setting and the file."""


def client_tls(ca_file: str, cert_file: str = "", key_file: str = "", *, settings: str) -> ssl.SSLContext | bool:
    """What httpx's ``verify`` takes: the TLS context to connect with, or True for httpx's own (public CAs,
    no client certificate).

    ``settings`` prefixes the names in messages: "commands." names ``commands.ca_file``,
    ``commands.client_cert_file`` and ``commands.client_key_file``.
    """
    if not (ca_file or cert_file):
        return True
    try:
        context = ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as error:
        raise ClientTLSError(f"{settings}ca_file {ca_file}: not a readable PEM CA bundle ({error})") from error
    if cert_file:
        for name, path in (("client_cert_file", cert_file), ("client_key_file", key_file)):
            if not Path(path).is_file():
                raise ClientTLSError(f"{settings}{name} {path}: no such file")
        try:
            context.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as error:
            raise ClientTLSError(
                f"{settings}client_cert_file {cert_file} and {settings}client_key_file {key_file}:"
                f" not a PEM certificate and its private key ({error})"
            ) from error
    return context
