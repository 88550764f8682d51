"""Preview: a server a session runs is reachable through the platform for the session's owner
only, over HTTP and WebSockets, through the agent's port relay (the sandbox has no network).
SQLite and PostgreSQL, real sandboxes."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import LiveServer, UserClient, module_live_server, register_user

pytestmark = pytest.mark.sandbox

server = module_live_server("preview")

SERVER_PY = r"""
import base64, hashlib, http.server, json, socketserver, struct, sys

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path.startswith("/ws"):
            return self.websocket()
        if self.path == "/redirect":
            self.send_response(302); self.send_header("Location", "/page"); self.send_header("Content-Length", "0"); self.end_headers(); return
        if self.path == "/chunked":
            self.send_response(200); self.send_header("Transfer-Encoding", "chunked"); self.end_headers()
            for part in (b"alpha-", b"beta-", b"gamma"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n"); return
        if self.path == "/big":
            self.send_response(200); self.send_header("Content-Length", str(64 << 20)); self.end_headers()
            for _ in range(64):  # incompressible: gzip on the way must not shrink it
                self.wfile.write(b"z" + __import__("os").urandom((1 << 20) - 1))
            return
        if self.path == "/headers":
            body = json.dumps(dict(self.headers)).encode()
        else:
            body = ("<h1>preview works</h1><p>%s</p>" % self.path).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html" if self.path != "/headers" else "application/json")
        self.send_header("Set-Cookie", "cc_session=stolen; Path=/")
        self.send_header("Set-Cookie", "app=1; Path=/")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        data = self.rfile.read(n)
        body = b"got " + str(len(data)).encode() + b" " + hashlib.sha256(data).hexdigest().encode()
        self.send_response(201); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)

    def websocket(self):
        key = self.headers["Sec-WebSocket-Key"]
        acc = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.send_response(101); self.send_header("Upgrade", "websocket"); self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", acc); self.end_headers(); self.wfile.flush()
        r, w = self.rfile, self.wfile
        while True:
            b1, b2 = r.read(2)
            n = b2 & 127
            if n == 126: n = struct.unpack(">H", r.read(2))[0]
            elif n == 127: n = struct.unpack(">Q", r.read(8))[0]
            mask = r.read(4); data = bytes(c ^ mask[i % 4] for i, c in enumerate(r.read(n)))
            op = b1 & 15
            if op == 8:
                w.write(b"\x88\x02\x03\xe8"); w.flush(); return
            out = b"echo:" + data
            hdr = bytes([0x80 | op]) + (bytes([len(out)]) if len(out) < 126 else b"\x7e" + struct.pack(">H", len(out)))
            w.write(hdr + out); w.flush()

class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

S(("127.0.0.1", 8000), H).serve_forever()
"""


def start_app(u: UserClient) -> str:
    sid = u.new_session()
    r = u.client.post(f"/api/workspace/{sid}/file/app.py", json={"content": SERVER_PY})
    assert r.status_code in (200, 201), r.text
    r = u.client.post(f"/api/sessions/{sid}/run", json={"path": "app.py"})
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 60
    while True:
        r = u.client.get(f"/api/sessions/{sid}/ports")
        assert r.status_code == 200, r.text
        ports = r.json()["ports"]
        if any(p["port"] == 8000 for p in ports):
            p = next(p for p in ports if p["port"] == 8000)
            assert p["url"] == f"/api/sessions/{sid}/preview/8000/"
            assert p["address"] == "127.0.0.1"
            return sid
        assert time.monotonic() < deadline, ports
        time.sleep(0.2)


def test_http_through_the_preview(user: UserClient, server: LiveServer) -> None:
    sid = start_app(user)
    base = f"/api/sessions/{sid}/preview/8000"
    r = user.client.get(base)
    assert r.status_code == 307 and r.headers["location"] == base + "/"
    r = user.client.get(base + "/hello?x=1")
    assert r.status_code == 200 and "preview works" in r.text and "/hello?x=1" in r.text
    assert r.headers["x-frame-options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in r.headers["content-security-policy"]
    # The program cannot replace the platform's login cookie; its own cookies pass.
    cookies = r.headers.get_list("set-cookie")
    assert cookies == ["app=1; Path=/"], cookies
    assert user.client.cookies.get("cc_session") not in (None, "stolen")
    r = user.client.get(base + "/chunked")
    assert r.status_code == 200 and r.text == "alpha-beta-gamma"
    body = bytes(range(256)) * 4096  # 1 MiB, binary
    r = user.client.post(base + "/upload", content=body)
    assert r.status_code == 201 and r.text.startswith(f"got {len(body)} ")
    r = user.client.get(base + "/redirect", follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == base + "/page"
    # The platform's credentials never reach the program.
    seen = user.client.get(
        base + "/headers", headers={"Authorization": f"Bearer {user.token}", "X-Mine": "1"}
    ).json()
    lowered = {k.lower(): v for k, v in seen.items()}
    assert "authorization" not in lowered and "cc_session" not in lowered.get("cookie", "")
    assert lowered["x-mine"] == "1" and lowered["x-forwarded-prefix"] == base
    # A port nobody listens on: 502 with a clear error.
    r = user.client.get(f"/api/sessions/{sid}/preview/8001/")
    assert r.status_code == 502 and r.json()["error"] == "preview_unreachable"
    r = user.client.get(f"/api/sessions/{sid}/preview/70000/")
    assert r.status_code == 422


def test_a_stalled_download_does_not_hold_up_other_requests(user: UserClient) -> None:
    sid = start_app(user)
    base = f"/api/sessions/{sid}/preview/8000"
    with user.client.stream("GET", base + "/big") as big:
        assert big.status_code == 200
        first = next(big.iter_bytes())
        assert first.startswith(b"z")
        # The 64 MiB download is not read further; other requests still get through.
        for i in range(5):
            r = user.client.get(f"{base}/page{i}", timeout=20)
            assert r.status_code == 200 and f"/page{i}" in r.text
    r = user.client.get(f"{base}/after", timeout=20)  # and after it was abandoned
    assert r.status_code == 200


def test_preview_is_for_the_owner_only_and_not_cross_site(
    user: UserClient, server: LiveServer
) -> None:
    sid = start_app(user)
    url = f"/api/sessions/{sid}/preview/8000/"
    other = register_user(server)
    try:
        r = other.client.get(url)
        assert r.status_code == 404 and r.json()["error"] == "session_not_found"
        assert other.client.get(f"/api/sessions/{sid}/ports").status_code == 404
    finally:
        other.client.close()
    with httpx.Client(base_url=server.base_url) as anon:
        assert anon.get(url).status_code == 401
    for headers in (
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
    ):
        r = user.client.get(url, headers=headers)
        assert r.status_code == 403 and r.json()["error"] == "cross_site", headers
        r = user.client.post(url + "form", headers=headers, content=b"a=1")
        assert r.status_code == 403, headers
    r = user.client.get(url, headers={"Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 200


def ws_url(server: LiveServer, path: str) -> str:
    return server.base_url.replace("http://", "ws://") + path


def test_websocket_through_the_preview(user: UserClient, server: LiveServer) -> None:
    sid = start_app(user)
    path = f"/api/sessions/{sid}/preview/8000/ws"
    cookie = f"cc_session={user.client.cookies.get('cc_session')}"

    async def talk() -> list[Any]:
        async with websockets.connect(
            ws_url(server, path), additional_headers={"Cookie": cookie, "Origin": server.base_url}
        ) as ws:
            await ws.send("hi")
            first = await ws.recv()
            await ws.send(b"\x00\x01bin")
            second = await ws.recv()
            return [first, second]

    assert asyncio.run(talk()) == ["echo:hi", b"echo:\x00\x01bin"]

    async def refused(headers: dict[str, str]) -> int | None:
        try:
            async with websockets.connect(ws_url(server, path), additional_headers=headers) as ws:
                await ws.recv()
        except websockets.exceptions.ConnectionClosed as e:
            return e.rcvd.code if e.rcvd else None
        except websockets.exceptions.InvalidStatus as e:
            return e.response.status_code
        return None

    # Refused before or at the handshake (the request guard answers 403, the handler 4403).
    assert asyncio.run(refused({"Cookie": cookie, "Origin": "https://evil.example"})) in (403, 4403)
    other = register_user(server)
    try:
        other_cookie = f"cc_session={other.client.cookies.get('cc_session')}"
        assert asyncio.run(refused({"Cookie": other_cookie})) in (403, 4404)
    finally:
        other.client.close()


def test_ports_of_a_stopped_sandbox(user: UserClient) -> None:
    sid = user.new_session()
    r = user.client.get(f"/api/sessions/{sid}/ports")
    assert r.status_code == 200 and r.json() == {"ports": []}
    r = user.client.get(f"/api/sessions/{sid}/preview/8000/")
    assert r.status_code == 409 and r.json()["error"] == "sandbox_not_running"
    _ = json  # (kept for readable failures)


def test_a_viewer_uses_the_preview_like_a_visitor_http_and_websocket(
    user: UserClient, server: LiveServer
) -> None:
    """One policy for the preview: every member uses the running program as a visitor would,
    over HTTP (any method) and its WebSockets; a read-only public link gets no preview."""
    sid = start_app(user)
    viewer = register_user(server, "vie")
    try:
        r = user.client.post(
            f"/api/sessions/{sid}/members", json={"user": viewer.username, "role": "viewer"}
        )
        assert r.status_code == 201, r.text
        assert viewer.client.post(f"/api/invitations/{sid}/accept").status_code == 200
        base = f"/api/sessions/{sid}/preview/8000"
        r = viewer.client.get(base + "/page")
        assert r.status_code == 200 and "preview works" in r.text
        r = viewer.client.post(base + "/form", content=b"a=1")
        assert r.status_code == 201 and r.text.startswith("got 3 "), r.text
        # The viewer still cannot start or stop anything in the workspace.
        r = viewer.client.post(f"/api/sessions/{sid}/run", json={"path": "app.py"})
        assert (r.status_code, r.json()["error"]) == (403, "forbidden_role")
        cookie = f"cc_session={viewer.client.cookies.get('cc_session')}"

        async def talk() -> Any:
            async with websockets.connect(
                ws_url(server, base + "/ws"),
                additional_headers={"Cookie": cookie, "Origin": server.base_url},
            ) as ws:
                await ws.send("from-viewer")
                return await ws.recv()

        assert asyncio.run(talk()) == "echo:from-viewer"
        link = user.client.post(f"/api/sessions/{sid}/links", json={"permission": "read"})
        token = link.json()["token"]
        with httpx.Client(base_url=server.base_url) as anon:
            assert anon.get(f"/api/public/{token}").status_code == 200
            for path in (f"/api/public/{token}/preview/8000/page", f"{base}/page"):
                assert anon.get(path).status_code in (401, 404), path
    finally:
        viewer.client.close()
