"""How services are put on the grpc.aio server: the login path registered, the rarely called ones found by name.

A generated ``add_*_to_server`` registers each of its methods twice: by name through a
generic handler, and as a "registered method" that grpc prepares a call for in advance.
grpc.aio keeps one pending call per registered method and, for every call that arrives,
waits on all of them at once (``asyncio.wait``), then takes the callbacks off each again.
So every registered method costs every call, the logins included, and the wait grows with
the number of methods: registering only the login path's two keeps it as short as it can be,
and an admin method added later costs the logins nothing.

The admin, feed, health and reflection methods are called rarely; through their generic
handlers grpc finds them by name at a dictionary look-up's cost, and they cost the logins
nothing.  CheckLogin and ReportPhoneNumberChange stay registered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc


class _GenericOnly:
    """The server as a generated ``add_*_to_server`` sees it: it keeps the generic registration only."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service_name: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        """Left out on purpose: see the module's docstring."""


def add_rarely_called(add: Callable[[Any, Any], None], servicer: object, server: grpc.aio.Server) -> None:
    """``add(servicer, server)`` for a generated ``add_*_to_server``, its methods found by name only."""
    add(servicer, _GenericOnly(server))
