"""Preview: HTTP and WebSocket requests of a session's owner relayed to a port a program of the
session listens on, through the sandbox's agent (``port.connect``, protocol 2).

The sandbox keeps its network policy: the agent connects to loopback inside the sandbox's own
network namespace and relays bytes on its (authenticated) connection; nothing is published on
the host. Each relayed request or WebSocket has an agent connection to itself while it runs (the
client's flow control is per connection: one stalled download must not hold up the others);
HTTP requests reuse idle ones (``IDLE_CONNECTIONS`` per sandbox), so no handshake per request.

An HTTP request is sent upstream as HTTP/1.1 with ``Connection: close`` (one request per
relayed connection); the response head is parsed here, a chunked body is decoded (the ASGI
server frames the body again), anything else streams until its length or the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from coolcoding.agent.client import AgentClient, AgentError, PortStream
from coolcoding.errors import BadGateway, Conflict, InvalidInput, Unavailable

log = logging.getLogger(__name__)

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
     "transfer-encoding", "upgrade", "host", "content-length"}
)  # fmt: skip
MAX_HEAD_BYTES = 64 * 1024
IDLE_CONNECTIONS = 8  # idle agent connections kept per sandbox for the next requests


class PreviewUnreachable(BadGateway):
    """Nothing listens on the port (502)."""

    code = "preview_unreachable"


@dataclass
class UpstreamResponse:
    status: int
    headers: list[tuple[str, str]]
    body: AsyncIterator[bytes]


class SessionPorts:
    """The agent connections of one running sandbox, for its preview."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self._shared: AgentClient | None = None
        self._idle: list[AgentClient] = []
        self._lock = asyncio.Lock()

    async def client(self) -> AgentClient:
        async with self._lock:
            if self._shared is None or self._shared.lost:
                self._shared = await self.sandbox.connect_agent()
            return self._shared

    async def acquire(self) -> AgentClient:
        """An agent connection for one relayed request: an idle one, or a new one."""
        while self._idle:
            idle = self._idle.pop()
            if not idle.lost:
                return idle
            await _close(idle)
        client: AgentClient = await self.sandbox.connect_agent()
        return client

    async def release(self, client: AgentClient, clean: bool) -> None:
        """Back to the idle ones after a request whose relay ended on both sides; closed
        otherwise (closing ends a relay still going, in the agent too)."""
        if clean and not client.lost and len(self._idle) < IDLE_CONNECTIONS:
            self._idle.append(client)
        else:
            await _close(client)

    async def close(self) -> None:
        for client in [*self._idle, *([self._shared] if self._shared else [])]:
            await _close(client)
        self._idle.clear()
        self._shared = None


async def _close(client: AgentClient) -> None:
    with contextlib.suppress(Exception):
        await client.close()


async def connect(client: AgentClient, port: int) -> PortStream:
    try:
        return await client.port_connect(port)
    except AgentError as e:
        if e.code == "port_closed":
            raise PreviewUnreachable(f"nothing listens on port {port} in this session") from e
        if e.code == "unknown_method":
            raise Unavailable(
                "this sandbox's agent predates the preview: restart the sandbox",
                code="preview_unsupported",
            ) from e
        if e.code == "bad_params":
            raise InvalidInput(e.message, code="invalid_port") from e
        raise


def request_head(method: str, target: str, headers: list[tuple[str, str]], port: int,
                 body_length: int | None) -> bytes:  # fmt: skip
    lines = [f"{method} {target} HTTP/1.1", f"Host: localhost:{port}", "Connection: close"]
    for name, value in headers:
        if name.lower() in HOP_BY_HOP or "\r" in value or "\n" in value:
            continue
        lines.append(f"{name}: {value}")
    if body_length is not None:
        lines.append(f"Content-Length: {body_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


class _Reader:
    """Buffered reads over a port stream."""

    def __init__(self, stream: PortStream) -> None:
        self.stream = stream
        self.buf = bytearray()
        self.eof = False

    async def fill(self) -> bool:
        if self.eof:
            return False
        chunk = await self.stream.read()
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    async def until(self, sep: bytes, limit: int) -> bytes:
        while (i := self.buf.find(sep)) < 0:
            if len(self.buf) > limit:
                raise PreviewUnreachable("the program's response head is too large")
            if not await self.fill():
                raise PreviewUnreachable("the program closed the connection without a response")
        out = bytes(self.buf[: i + len(sep)])
        del self.buf[: i + len(sep)]
        return out

    async def exactly(self, n: int) -> AsyncIterator[bytes]:
        while n > 0:
            if not self.buf and not await self.fill():
                return
            piece = bytes(self.buf[:n])
            del self.buf[: len(piece)]
            n -= len(piece)
            yield piece

    async def rest(self) -> AsyncIterator[bytes]:
        if self.buf:
            yield bytes(self.buf)
            self.buf.clear()
        while await self.fill():
            yield bytes(self.buf)
            self.buf.clear()


def parse_head(head: bytes) -> tuple[int, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise PreviewUnreachable("the program did not answer with HTTP")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    return int(parts[1]), headers


async def _chunked(r: _Reader) -> AsyncIterator[bytes]:
    while True:
        size_line = await r.until(b"\r\n", 4096)
        try:
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            return
        if size == 0:
            return
        async for piece in r.exactly(size):
            yield piece
        await r.until(b"\r\n", 16)


async def send_http(stream: PortStream, head: bytes, body: bytes, method: str) -> UpstreamResponse:
    await stream.write(head + body)
    r = _Reader(stream)
    while True:
        status, headers = parse_head(await r.until(b"\r\n\r\n", MAX_HEAD_BYTES))
        if status != 100:
            break
    lower = {k.lower(): v for k, v in headers}
    chunked = "chunked" in lower.get("transfer-encoding", "").lower()
    if method == "HEAD" or status in (204, 304):
        body_iter: AsyncIterator[bytes] = r.exactly(0)
    elif chunked:
        body_iter = _chunked(r)
    elif (length := lower.get("content-length", "")).isdigit():
        body_iter = r.exactly(int(length))
    else:
        body_iter = r.rest()
    out = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP or
           (k.lower() == "content-length" and not chunked)]  # fmt: skip
    return UpstreamResponse(status, out, body_iter)


class PreviewService:
    """The sessions' port connections; ``sandbox_of(uuid)`` gives a running sandbox or None."""

    def __init__(self, sandbox_of: Any) -> None:
        self.sandbox_of = sandbox_of
        self._ports: dict[str, SessionPorts] = {}

    def _running(self, session_uuid: str) -> Any:
        sandbox = self.sandbox_of(session_uuid)
        if sandbox is None:
            raise Conflict(
                "the session's sandbox is not running: start it and the program first",
                code="sandbox_not_running",
            )
        ports = self._ports.get(session_uuid)
        if ports is None or ports.sandbox is not sandbox:
            if ports is not None:
                asyncio.get_running_loop().create_task(ports.close())
            ports = self._ports[session_uuid] = SessionPorts(sandbox)
        return ports

    async def list_ports(self, session_uuid: str) -> list[dict[str, Any]]:
        if self.sandbox_of(session_uuid) is None:
            return []
        client = await self._running(session_uuid).client()
        try:
            return [dict(p) for p in await client.ports_list()]
        except AgentError as e:
            if e.code == "unknown_method":
                return []
            raise

    async def open(
        self, session_uuid: str, port: int
    ) -> tuple[SessionPorts, AgentClient, PortStream]:
        """A relayed connection to ``port`` on an agent connection used by this request alone
        (the client's backpressure is per connection, so a browser that stops reading one
        response must not stall the session's other requests); give it back with
        ``SessionPorts.release`` (idle connections are reused: no handshake per request)."""
        ports = self._running(session_uuid)
        client = await ports.acquire()
        try:
            return ports, client, await connect(client, port)
        except PreviewUnreachable:
            await ports.release(client, clean=True)  # the connection itself is fine
            raise
        except BaseException:
            await ports.release(client, clean=False)
            raise

    async def open_dedicated(self, session_uuid: str, port: int) -> tuple[AgentClient, PortStream]:
        """A connection of its own (a WebSocket's): the caller closes the client."""
        sandbox = self._running(session_uuid).sandbox
        client: AgentClient = await sandbox.connect_agent()
        try:
            return client, await connect(client, port)
        except BaseException:
            await client.close()
            raise

    async def close(self) -> None:
        for ports in list(self._ports.values()):
            await ports.close()
        self._ports.clear()
