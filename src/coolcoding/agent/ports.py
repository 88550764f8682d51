"""Ports of the sandbox for the preview (protocol version 2): which ports programs listen on,
and byte relays to them.

``ports.list`` reads ``/proc/net/tcp`` and ``/proc/net/tcp6``, which show the sockets of the
agent's own network namespace: the sandbox's. ``port.connect`` opens a TCP connection to
``127.0.0.1`` (or ``::1``) *inside* that namespace and relays bytes on one agent channel: data
the client sends on the channel goes to the socket, what the socket sends comes back as data on
it; an empty frame ends a direction (half-close), and the relay is gone once both ended. Only
loopback: the agent never opens a connection anywhere else, so the preview gives the server no
way out of the sandbox and the sandbox no way in beyond its own listening ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

READ_BYTES = 65536
HIGH_WATER = 1024 * 1024  # unsent bytes to the client before the relay stops reading the socket
MAX_SOCKET_BACKLOG = 16 * 1024 * 1024  # bytes queued to the socket before the relay is cut
LISTEN = "0A"


class RelayPeer(Protocol):
    input_sinks: dict[int, Callable[[bytes], None]]

    def new_channel(self) -> int: ...

    def send_data(self, channel: int, data: bytes) -> None: ...

    def backlog(self) -> int: ...

    async def drained(self) -> None: ...


def _parse(table: str, family: str) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != LISTEN:
            continue
        addr_hex, _, port_hex = fields[1].partition(":")
        try:
            port = int(port_hex, 16)
        except ValueError:
            continue
        if family == "ipv4":
            octets = bytes.fromhex(addr_hex)[::-1]
            address = ".".join(str(b) for b in octets)
        else:
            raw = bytes.fromhex(addr_hex)
            # Four little-endian 32-bit words.
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
            address = ":".join(words[i : i + 2].hex() for i in range(0, 16, 2))
            address = {"0000:0000:0000:0000:0000:0000:0000:0000": "::",
                       "0000:0000:0000:0000:0000:0000:0000:0001": "::1"}.get(address, address)  # fmt: skip
        out.append({"port": port, "address": address, "family": family})
    return out


def listening_ports(proc_net: str = "/proc/net") -> list[dict[str, object]]:
    """TCP ports in LISTEN state in this network namespace, one entry per port (lowest first)."""
    seen: dict[int, dict[str, object]] = {}
    for name, family in (("tcp", "ipv4"), ("tcp6", "ipv6")):
        try:
            with open(f"{proc_net}/{name}") as f:
                table = f.read()
        except OSError:
            continue
        for entry in _parse(table, family):
            seen.setdefault(int(str(entry["port"])), entry)
    return [seen[p] for p in sorted(seen)]


class PortRelay:
    """One TCP connection inside the sandbox, relayed on one channel of one client."""

    def __init__(self, peer: RelayPeer, channel: int, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:  # fmt: skip
        self.peer = peer
        self.channel = channel
        self.reader = reader
        self.writer = writer
        self._client_ended = False
        self._socket_ended = False
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, peer: RelayPeer, host: str, port: int, timeout_s: float) -> PortRelay:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
        relay = cls(peer, peer.new_channel(), reader, writer)
        peer.input_sinks[relay.channel] = relay.from_client
        return relay

    def start(self) -> None:
        """After the response naming the channel was sent: relay the socket's bytes."""
        self._task = asyncio.ensure_future(self._pump())

    def from_client(self, data: bytes) -> None:
        if self._client_ended:
            return
        transport = self.writer.transport
        if not data:
            self._client_ended = True
            with contextlib.suppress(OSError, RuntimeError):
                if self.writer.can_write_eof():
                    self.writer.write_eof()
            self._maybe_done()
            return
        if transport.is_closing():
            return
        self.writer.write(data)
        if transport.get_write_buffer_size() > MAX_SOCKET_BACKLOG:
            log.warning("port relay %s: the program does not read; cut", self.channel)
            self.close()

    async def _pump(self) -> None:
        try:
            while chunk := await self.reader.read(READ_BYTES):
                self.peer.send_data(self.channel, chunk)
                if self.peer.backlog() > HIGH_WATER:
                    await self.peer.drained()
        except (OSError, ConnectionError):
            pass
        finally:
            self._socket_ended = True
            with contextlib.suppress(Exception):
                self.peer.send_data(self.channel, b"")
            self._maybe_done()

    def _maybe_done(self) -> None:
        if self._client_ended and self._socket_ended:
            self.close()

    def close(self) -> None:
        self.peer.input_sinks.pop(self.channel, None)
        self.writer.close()
        if self._task is not None and not self._task.done():
            self._task.cancel()
