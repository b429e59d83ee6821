"""A TCP proxy a test can break: the network between the gateway and PostgreSQL, on demand.

``cut`` resets every connection and refuses new ones (the database host went away);
``stall`` keeps connections open but forwards nothing (a black-holed network, the worst
case: nothing fails, everything waits); ``restore`` lets traffic flow again.  ``strand``
black-holes the connections open now, for good, while new ones flow: a failover that moved
the database's address, leaving the old connections to a host that will never answer.
``accepted`` counts the connections clients opened; ``sent_upstream`` the bytes the clients' side has
forwarded so far: what the server was given;
``stall_after`` stalls once the clients have sent so many more.
"""

from __future__ import annotations

import asyncio
import contextlib


class FaultyProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._refusing = False
        self._clients: set[asyncio.StreamWriter] = set()
        self._stranded: set[asyncio.StreamWriter] = set()
        self._closed = asyncio.Event()
        self.port = 0
        self.accepted = 0
        self.sent_upstream = 0
        self._stall_at: int | None = None

    def in_front_of(self, database_url: str) -> str:
        """``database_url`` (on the upstream's port) by way of this proxy."""
        through = database_url.replace(f":{self._upstream[1]}/", f":{self.port}/")
        assert through != database_url
        return through

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self._closed.set()
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        self._refusing = True
        self._flowing.set()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def stall(self) -> None:
        self._flowing.clear()

    def strand(self) -> None:
        """The database side of each open connection goes (its sessions end, as on a dead host); the
        gateway's side stays open and silent."""
        self._stranded |= self._clients
        for writer in list(self._writers - self._clients):
            writer.transport.abort()

    def stall_after(self, more: int) -> None:
        """Forward the clients' next ``more`` bytes, then stall: a caller whose request stops halfway."""
        self._stall_at = self.sent_upstream + more

    async def _upstream_share(self, data: bytes, writer: asyncio.StreamWriter) -> bytes:
        """Counts what goes to the server; at the ``stall_after`` mark, sends what fits and waits."""
        if self._stall_at is not None and self.sent_upstream + len(data) > self._stall_at:
            fits = max(self._stall_at - self.sent_upstream, 0)
            writer.write(data[:fits])
            self.sent_upstream += fits
            data = data[fits:]
            self._stall_at = None
            self.stall()
            await self._flowing.wait()
        self.sent_upstream += len(data)
        return data

    def restore(self) -> None:
        self._refusing = False
        self._flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._refusing:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, upstream_writer}
        self._clients.add(writer)
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                await self._flowing.wait()
                if writer.transport.is_closing():
                    break
                if writer not in self._clients:
                    data = await self._upstream_share(data, writer)
                writer.write(data)
                await writer.drain()
            if writer in self._stranded:
                await self._closed.wait()  # until the test ends: the gateway hears neither an answer nor a reset
        writer.transport.abort()
        self._writers.discard(writer)
