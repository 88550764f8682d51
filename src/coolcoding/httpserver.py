"""How ``coolcoding serve`` runs uvicorn: connection limits and read timeouts against slowloris.

uvicorn times out idle keep-alive connections but not a request whose headers (or body) trickle
in, nor a connection that sends nothing: 20,000 such sockets used up the open-file limit and every
other client was refused. ``GuardedHttpToolsProtocol`` (uvicorn's httptools protocol, which
``http="auto"`` picks) adds:

- a header timeout: from the connection (or the first byte of the next request) to complete
  request headers;
- a body timeout: idle time between body chunks while the server is reading (not while the app is
  busy, nor while reading is paused because the app has not consumed the body yet);
- a cap on open connections per client address, and a total cap below the open-file limit:
  a connection beyond either gets a 503 and is closed at once.

It also coalesces the writes of one event-loop turn into one ``writev``: uvicorn writes a
response's head and its body in two calls, i.e. two ``write`` syscalls and two TCP segments (the
client wakes up twice). On this VM the head's ``write`` alone was 6.7% of the server's CPU under
``bench_save_cpu.py``'s load (``bench/README.md``, "CPU outside the app").

Nothing is timed once a request is complete: long ``?wait=true`` requests and WebSockets (which
still count against the per-address cap until they close) are not cut.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import json
import logging
import resource
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from coolcoding.settings import Settings

log = logging.getLogger(__name__)


def raise_open_file_limit() -> tuple[int, int]:
    """Raise this process's RLIMIT_NOFILE soft limit to its hard limit; returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    before = soft
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    log.info("open-file limit: %d (was %d)", soft, before)
    return _finite(before), _finite(soft)


def _finite(limit: int) -> int:
    return int(limit) if limit != resource.RLIM_INFINITY else 1 << 20


def total_connection_cap(settings: Settings, open_file_limit: int) -> int:
    """``max_connections``, or (0) the open-file limit minus a reserve for the database pool,
    sandboxes, terminals and files: 10% of the limit, at least 256."""
    if settings.max_connections > 0:
        return settings.max_connections
    return max(64, open_file_limit - max(256, open_file_limit // 10))


Networks = list[ipaddress.IPv4Network | ipaddress.IPv6Network]


def _networks(entries: list[str]) -> Networks:
    return [ipaddress.ip_network(e, strict=False) for e in entries]


def address_in(host: str, networks: Networks) -> bool:
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(addr in n for n in networks)


_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"retry-after: 5\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
)


def _refusal(message: str) -> bytes:
    body = json.dumps({"error": "too_many_connections", "message": message}).encode()
    return _REFUSED % (len(body), body)


COALESCE_MAX_BYTES = 64 * 1024


class CoalescingTransport:
    """A transport proxy that holds the writes of one event-loop turn and hands them to the real
    transport together (``writelines``: one ``writev`` on uvloop) at the end of the turn, or
    earlier on ``close``/``write_eof``. The order of writes is kept; nothing waits longer than
    the current turn. Everything else is the real transport's."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)
        if len(data) >= COALESCE_MAX_BYTES:
            # A large body goes out now: the real transport's flow control (pause_writing)
            # then sees it, and a stream that never yields cannot pile up here.
            self.flush()

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending or self._transport.is_closing():
            return
        if len(pending) == 1:
            self._transport.write(pending[0])
        else:
            self._transport.writelines(pending)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header/body timeouts and per-address connection caps.

    Subclasses made by ``guarded_protocol`` carry the limits and the shared per-address counts.
    """

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    per_address_cap: int = 0
    total_cap: int = 0
    exempt: Networks = []
    open_by_address: dict[str, int] = {}
    open_total: list[int] = [0]
    coalesce_writes: bool = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._counted: str | None = None

    # --- connection caps ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.coalesce_writes:
            self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
        host = self.client[0] if self.client else ""
        cls = type(self)
        refusal = None
        if cls.total_cap and cls.open_total[0] >= cls.total_cap:
            refusal = f"the server is at its connection limit (max_connections={cls.total_cap})"
        elif (
            cls.per_address_cap
            and cls.open_by_address.get(host, 0) >= cls.per_address_cap
            and not address_in(host, cls.exempt)
        ):
            refusal = (
                "too many open connections from your address "
                f"(max_connections_per_ip={cls.per_address_cap})"
            )
        if refusal is not None:
            transport.write(_refusal(refusal))
            transport.close()
            return
        self._counted = host
        cls.open_by_address[host] = cls.open_by_address.get(host, 0) + 1
        cls.open_total[0] += 1
        self._arm_header_timer()

    def _release(self) -> None:
        host, self._counted = self._counted, None
        if host is None:
            return
        cls = type(self)
        cls.open_total[0] -= 1
        n = cls.open_by_address.get(host, 0) - 1
        if n > 0:
            cls.open_by_address[host] = n
        else:
            cls.open_by_address.pop(host, None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        self._release()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self._cancel_timers()
        if isinstance(self.transport, CoalescingTransport):
            # The WebSocket protocol gets the real transport (its writes need no coalescing).
            self.transport.flush()
            self.transport = self.transport._transport
        super().handle_websocket_upgrade()
        # The WebSocket protocol now owns the transport: release the count when it closes.
        ws = self.transport.get_protocol()
        ws_lost = ws.connection_lost

        def connection_lost(exc: Exception | None) -> None:
            self._release()
            ws_lost(exc)

        ws.connection_lost = connection_lost  # type: ignore[method-assign]

    # --- timeouts -------------------------------------------------------------------------
    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None

    def _arm_header_timer(self) -> None:
        if self._header_timer is None and self.header_timeout_s > 0:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._timed_out)

    def _arm_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
        self._body_timer = None
        if self.body_timeout_s > 0:
            self._body_timer = self.loop.call_later(self.body_timeout_s, self._body_timed_out)

    def _timed_out(self) -> None:
        self._header_timer = None
        if self.flow is not None and self.flow.read_paused:  # waiting on us, not on the client
            self._arm_header_timer()
            return
        self.transport.close()

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.flow is not None and self.flow.read_paused:
            self._arm_body_timer()
            return
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().on_headers_complete()
        if not (self.parser.should_upgrade() and self._should_upgrade()):
            self._arm_body_timer()

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        if self._body_timer is not None:
            self._arm_body_timer()

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()


def guarded_protocol(settings: Settings, open_file_limit: int) -> type[GuardedHttpToolsProtocol]:
    """A protocol class with this server's limits and its own connection counts."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "header_timeout_s": settings.http_header_timeout_s,
            "body_timeout_s": settings.http_body_timeout_s,
            "per_address_cap": settings.max_connections_per_ip,
            "total_cap": total_connection_cap(settings, open_file_limit),
            # A trusted reverse proxy carries many clients on its connections.
            "exempt": _networks(settings.trusted_proxies),
            "open_by_address": {},
            "open_total": [0],
            "coalesce_writes": settings.http_coalesce_writes,
        },
    )


def settle_gc(settings: Settings) -> None:
    """Before serving: everything imported and built so far lives as long as the process; out of
    the collector's sight (``gc.freeze``), a full collection no longer walks it (~165,000
    objects: 0.5-0.9 s per collection on a loaded 2-core host, paid by whichever request is in
    flight). Then young collections every ``gc_young_threshold`` allocations instead of 700:
    each walks the live objects of every request in flight, 6.9% of the server's CPU at 500
    req/s with the default (``bench/README.md``, "CPU outside the app")."""
    gc.collect()
    gc.freeze()
    if settings.gc_young_threshold > 0:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(settings.gc_young_threshold, older, oldest)


def listen_backlog() -> int:
    """The kernel's accept-queue maximum (net.core.somaxconn): under a connection flood a full
    queue drops SYNs and a normal client waits seconds for the retransmission."""
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return max(2048, min(int(f.read()), 65535))
    except (OSError, ValueError):
        return 2048


def uvicorn_options(settings: Settings, *, open_file_limit: int | None = None) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run``/``uvicorn.Config`` shared by the CLI and the tests.

    uvicorn's own X-Forwarded-For handling is off: it trusts loopback by default, which let any
    local process (a network sandbox included) pick its client address. ``api/clientip.py``
    reads the header only from ``trusted_proxies``."""
    limit = open_file_limit if open_file_limit is not None else raise_open_file_limit()[1]
    return {
        "http": guarded_protocol(settings, limit),
        "proxy_headers": False,
        "backlog": listen_backlog(),
        "ws_max_size": 1 << 20,
        "ws_per_message_deflate": settings.ws_compression,
    }
