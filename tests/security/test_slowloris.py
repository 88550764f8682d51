"""Finding 7: slowloris. Sockets that send partial headers (or nothing) are closed after the header
timeout, a stalled body after the body timeout, and one address cannot hold more than its cap of
connections; other clients are served meanwhile. Runs the real ``coolcoding serve``."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serve_helpers import serve

HEADER_TIMEOUT = 1.5
CAP = 40


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("slowloris")
    with serve(
        data_dir,
        http_header_timeout_s=HEADER_TIMEOUT,
        http_body_timeout_s=HEADER_TIMEOUT,
        max_connections_per_ip=CAP,
    ) as p:
        yield p


def _open(port: str, n: int, source: str = "127.0.0.1", first: bytes = b"") -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind((source, 0))
        s.connect(("127.0.0.1", int(port)))
        if first:
            s.sendall(first)
        socks.append(s)
    return socks


def _other_client(port: str) -> httpx.Response:
    """GET /api/health/ from another client address (source 127.0.0.2)."""
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(transport=transport, timeout=10) as c:
        return c.get(f"http://127.0.0.1:{port}/api/health/")


def _closed_by_server(s: socket.socket, within: float) -> bool:
    """True when the server closes ``s`` (EOF or reset) within ``within`` seconds (a generous
    bound, not a measurement: the timeout is a fraction of it)."""
    s.settimeout(within)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_partial_headers_are_timed_out_while_others_are_served(port: str) -> None:
    socks = _open(port, CAP - 5, first=b"GET /api/health/ HTTP/1.1\r\nHost: x\r\nX-a: ")
    socks += _open(port, 3)  # connected, nothing sent
    try:
        # A normal client, from another address, is served while they hang.
        r = _other_client(port)
        assert r.status_code == 200
        for s in socks[:-3]:
            s.sendall(b"b")  # still trickling: not a reason to wait longer
        assert all(_closed_by_server(s, HEADER_TIMEOUT * 10) for s in socks)
    finally:
        for s in socks:
            s.close()


def test_stalled_body_is_timed_out(port: str) -> None:
    (s,) = _open(
        port,
        1,
        first=b"POST /api/users/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{",
    )
    with s:
        assert _closed_by_server(s, HEADER_TIMEOUT * 10)


def test_per_address_cap_refuses_that_address_only(port: str) -> None:
    socks = _open(port, CAP)
    try:
        time.sleep(0.2)  # let the server accept them all
        (extra,) = _open(port, 1)
        with extra:
            extra.settimeout(10)
            answer = extra.recv(4096)
            assert answer.startswith(b"HTTP/1.1 503"), answer
            assert b"max_connections_per_ip" in answer
        # Another address is not affected by this one's cap.
        r = _other_client(port)
        assert r.status_code == 200
    finally:
        for s in socks:
            s.close()
    # Closed connections are released: the address may connect again.
    deadline = time.monotonic() + 10
    while True:
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/api/health/", timeout=10)
            if r.status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "connections were not released"
        time.sleep(0.1)


def test_long_requests_and_websockets_are_not_cut(port: str, tmp_path: Path) -> None:
    """Only the header and idle-body phases are timed: a WebSocket left open for several header
    timeouts is still answered."""
    import websockets.sync.client as ws_client

    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
        r = c.post(
            "/api/users/register",
            json={"username": "slowuser", "email": "slow@example.com", "password": "p" * 12},
        )
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        r = c.post(
            "/api/sessions/", json={"name": "s"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 201, r.text
        uuid = r.json()["uuid"]
    with ws_client.connect(
        f"ws://127.0.0.1:{port}/api/sessions/{uuid}/events",
        additional_headers={"Authorization": f"Bearer {token}"},
    ) as ws:
        ws.recv(timeout=10)
        time.sleep(HEADER_TIMEOUT * 3)
        ws.send('{"type":"ping"}')
        while True:
            msg = ws.recv(timeout=10)
            if '"pong"' in str(msg):
                break
