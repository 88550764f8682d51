"""A network-enabled session shared with a viewer and probed by a stranger (real sandboxes with
their own network namespace and slirp4netns, real WebSockets, SQLite and PostgreSQL): network
mode changes nothing about who may do what. The program's port is reached only through the
platform's preview (role-checked; slirp has no inbound forward), a viewer's keystrokes and
co-editing updates are refused, the network setting stays the owner's, and a stranger gets 404
on every route and socket of the session, the preview and the ports list included."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.collab_client import CollabClient
from tests.conftest import LiveServer, UserClient, module_live_server, register_user
from tests.sandbox_helpers import Term, cookie

pytestmark = pytest.mark.sandbox

server = module_live_server("netshare")

MARK = "net-share-app-7f3c"
APP = f"""
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"{MARK}"
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    do_POST = do_GET
http.server.HTTPServer(("0.0.0.0", 8000), H).serve_forever()
"""


def ws_url(server: LiveServer, path: str) -> str:
    return server.base_url.replace("http://", "ws://") + path


async def ws_refusal(server: LiveServer, u: UserClient, path: str) -> int | None:
    """The close code (or handshake status) a socket of ``u`` gets; None if it stays open."""
    headers = {**cookie(u), "Origin": server.base_url}
    try:
        async with websockets.connect(ws_url(server, path), additional_headers=headers) as ws:
            async with asyncio.timeout(10):
                while True:
                    await ws.recv()
    except ConnectionClosed as e:
        return e.rcvd.code if e.rcvd else None
    except InvalidStatus as e:
        return e.response.status_code
    except TimeoutError:
        return None


def host_port_shows_the_app(port: int) -> bool:
    """Whether the host's own loopback port answers with the sandbox's program."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 2) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        s.settimeout(2)
        return MARK.encode() in s.recv(4096)
    return False


async def test_network_mode_bypasses_no_role_check(server: LiveServer) -> None:
    owner, viewer, stranger = (register_user(server, p) for p in ("own", "vie", "str"))
    try:
        r = owner.client.post("/api/sessions/", json={"name": "net", "network_enabled": True})
        assert r.status_code == 201 and r.json()["network_enabled"] is True, r.text
        sid = r.json()["uuid"]
        r = owner.client.post(
            f"/api/sessions/{sid}/members", json={"user": viewer.username, "role": "viewer"}
        )
        assert r.status_code == 201, r.text
        assert viewer.client.post(f"/api/invitations/{sid}/accept").status_code == 200
        r = owner.client.post(f"/api/workspace/{sid}/file/app.py", json={"content": APP})
        assert r.status_code == 201, r.text
        r = owner.client.post(f"/api/workspace/{sid}/file/doc.txt", json={"content": "doc\n"})
        assert r.status_code == 201, r.text
        assert (
            owner.client.post(f"/api/sessions/{sid}/run", json={"path": "app.py"}).status_code
            == 202
        )
        deadline = time.monotonic() + 60
        while not any(
            p["port"] == 8000
            for p in owner.client.get(f"/api/sessions/{sid}/ports").json()["ports"]
        ):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        preview = f"/api/sessions/{sid}/preview/8000"
        assert MARK in owner.client.get(preview + "/").text
        # Inbound, the program is reached only through the platform: not on the host's port.
        assert not host_port_shows_the_app(8000)

        # A stranger: 404 everywhere, the network-mode preview and ports included.
        for path in (f"/api/sessions/{sid}/ports", preview + "/", f"/api/sessions/{sid}"):
            r = stranger.client.get(path)
            assert (r.status_code, r.json()["error"]) == (404, "session_not_found"), path
        r = stranger.client.post(preview + "/x", content=b"a=1")
        assert (r.status_code, r.json()["error"]) == (404, "session_not_found")
        for path in (
            preview + "/ws",
            f"/api/sessions/{sid}/terminals/t1",
            f"/api/sessions/{sid}/collab",
        ):
            assert await ws_refusal(server, stranger, path) in (403, 4404), path

        # A viewer: the preview as a visitor, nothing else that acts in the sandbox.
        assert MARK in viewer.client.get(preview + "/").text
        r = viewer.client.patch(f"/api/sessions/{sid}", json={"network_enabled": False})
        assert (r.status_code, r.json()["error"]) == (403, "forbidden_role")
        for method, path in (
            ("POST", f"/api/sessions/{sid}/run"),
            ("POST", f"/api/sessions/{sid}/sandbox/stop"),
            ("POST", f"/api/sessions/{sid}/sandbox/start"),
        ):
            r = viewer.client.request(method, path, json={"path": "app.py"})
            assert (r.status_code, r.json()["error"]) == (403, "forbidden_role"), path
        mine = await Term.open(server, owner, sid, "t1")
        watch = await Term.open(server, viewer, sid, "t1")
        assert watch.controls[0]["read_only"] is True
        await watch.ws.send(b"curl -s http://127.0.0.1:8000/ > /workspace/pwned\r")
        err = await watch.recv_until(lambda m: m is not None and m["type"] == "error")
        assert err is not None and err["error"] == "read_only"
        _, out = await mine.run("ls /workspace")
        assert b"pwned" not in out
        co = CollabClient(ws_url(server, f"/api/sessions/{sid}/collab"), viewer.token)
        await co.connect()
        try:
            await co.join("doc.txt")
            await co.edit("doc.txt", lambda t: t.insert(0, "vandal "))
            async with asyncio.timeout(10):
                while not any(e.get("error") == "read_only" for e in co.errors):
                    await asyncio.sleep(0.05)
        finally:
            await co.close()
        r = owner.client.get(f"/api/workspace/{sid}/file/doc.txt")
        assert r.json()["content"] == "doc\n"
        assert owner.client.get(f"/api/sessions/{sid}").json()["network_enabled"] is True
        await watch.close()
        await mine.close()
    finally:
        for u in (owner, viewer, stranger):
            u.client.close()
