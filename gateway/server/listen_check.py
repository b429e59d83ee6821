"""Finding a taken port before anything is written: a refused start must leave nothing behind.

The gateway binds its ports only once its store is open (the services need it), so a start on a
port another program holds used to fail after it had made a new installation (database, key
ring) in a mistyped data dir, or after a newer build had migrated the store of the very gateway
already serving there.  Binding each address alone first, and letting it go at once, refuses
that start while nothing is changed yet.  A port taken in the instant between the check and the
real bind still fails there, as before.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from gateway.config import split_listen


@dataclass(frozen=True)
class ListenAddress:
    """``HOST:PORT`` resolved for ``socket.socket`` and ``bind``."""

    family: socket.AddressFamily
    kind: socket.SocketKind
    proto: int
    where: tuple[Any, ...]  # (host, port), or IPv6's (host, port, flowinfo, scope_id)

    @property
    def port(self) -> int:
        return int(self.where[1])


def resolve_listen(address: str, purpose: str = "listen on") -> ListenAddress:
    host, port = split_listen(address)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:  # its own message names no address
        raise OSError(f"cannot {purpose} {address}: {error.strerror}") from error
    family, kind, proto, _, where = found[0]
    return ListenAddress(family, kind, proto, where)


def bind_alone(listen: ListenAddress, address: str, purpose: str = "listen on") -> ListenAddress:
    """Bind ``listen`` without SO_REUSEPORT and let it go; ``listen`` with the port the kernel gave (for port 0).

    Without SO_REUSEPORT the bind fails while anything holds the port: another program, or another
    mtsg whose sockets allow sharing.  SO_REUSEADDR, so that a restart's connections in TIME_WAIT,
    which are no one's, do not count.
    """
    with socket.socket(listen.family, listen.kind, listen.proto) as alone:
        alone.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            alone.bind(listen.where)
        except OSError as error:
            hint = " (is another mtsg serving there?)" if error.errno == errno.EADDRINUSE else ""
            raise OSError(f"cannot {purpose} {address}: {error.strerror}{hint}") from error
        return replace(listen, where=(listen.where[0], alone.getsockname()[1], *listen.where[2:]))


def refuse_taken_ports(addresses: Iterable[tuple[str, str]]) -> None:
    """Raise OSError naming the first of ``addresses`` (purpose, HOST:PORT) that another holds (port 0 never is)."""
    for purpose, address in addresses:
        listen = resolve_listen(address, purpose)
        if listen.port:
            bind_alone(listen, address, purpose)
