"""The client's address: the TCP peer, or X-Forwarded-For only when the peer is a trusted proxy.

uvicorn's own proxy-header handling is turned off (``httpserver.uvicorn_options``): it believed
X-Forwarded-For from any loopback peer, so a local process could pick its address and walk past
the per-IP login limit. Here the header is read right to left, skipping ``trusted_proxies``; the
first address that is not a trusted proxy is the client.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from starlette.requests import HTTPConnection

from coolcoding.httpserver import Networks, address_in


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> Networks:
    return [ipaddress.ip_network(e, strict=False) for e in entries]


def resolve_client_ip(
    peer: str | None, forwarded_for: str | None, trusted: list[str]
) -> str | None:
    """``peer`` unless it is a trusted proxy that sent X-Forwarded-For."""
    networks = _networks(tuple(trusted))
    if peer is None or not networks or not forwarded_for or not address_in(peer, networks):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a malformed chain: believe only the peer
        if not address_in(hop, networks):
            return hop
    return hops[0] if hops else peer


def client_ip(conn: HTTPConnection) -> str | None:
    """The client address of a request or WebSocket (see the module docstring)."""
    trusted: list[str] = conn.app.state.platform.settings.trusted_proxies
    peer = conn.client.host if conn.client else None
    return resolve_client_ip(peer, conn.headers.get("x-forwarded-for"), trusted)
