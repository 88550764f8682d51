"""WebSocket attacks: cross-site hijacking, no login, other users' sessions and terminals."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from tests.conftest import LiveServer, register_user, searchable, start_live_server
from tests.sandbox_helpers import Term, cookie

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv, stop = start_live_server(
        "sqlite",
        searchable(tmp_path_factory.mktemp("wssec")),
        public_origins=["https://ide.example.org"],
    )
    yield srv
    stop()


async def close_code(url: str, headers: dict[str, str], **kw: Any) -> int:
    ws = await websockets.connect(url, additional_headers=headers, **kw)
    with pytest.raises(websockets.ConnectionClosed) as info:
        for _ in range(10):
            await ws.recv()
    assert info.value.rcvd is not None
    return info.value.rcvd.code


@pytest.mark.parametrize("path", ["terminals/t1", "events", "collab"])
async def test_cross_site_origin_is_refused_with_4403(server: LiveServer, path: str) -> None:
    u = register_user(server)
    sid = u.new_session()
    url = f"{server.ws_url}/api/sessions/{sid}/{path}"
    assert await close_code(url, cookie(u), origin="https://evil.example.com") == 4403
    assert await close_code(url, cookie(u), origin="http://127.0.0.1.evil.com") == 4403
    # The server's own origin and a configured public origin are accepted.
    for origin in (server.base_url, "https://ide.example.org"):
        ws = await websockets.connect(url, additional_headers=cookie(u), origin=origin)  # type: ignore[arg-type]
        assert (await ws.recv()) is not None
        await ws.close()


@pytest.mark.parametrize("path", ["terminals/t1", "events", "collab"])
async def test_no_cookie_is_refused_with_4401(server: LiveServer, path: str) -> None:
    u = register_user(server)
    sid = u.new_session()
    url = f"{server.ws_url}/api/sessions/{sid}/{path}"
    assert await close_code(url, {}) == 4401
    assert await close_code(url, {"Cookie": "cc_session=forged-token"}) == 4401
    assert await close_code(url, {"Authorization": f"Bearer {u.token}x"}) == 4401


async def test_bearer_token_is_accepted(server: LiveServer) -> None:
    u = register_user(server)
    sid = u.new_session()
    ws = await websockets.connect(
        f"{server.ws_url}/api/sessions/{sid}/events",
        additional_headers={"Authorization": f"Bearer {u.token}"},
    )
    assert (await ws.recv()) is not None
    await ws.close()


@pytest.mark.parametrize("path", ["terminals/t1", "events", "collab"])
async def test_another_users_session_is_refused_with_4404(server: LiveServer, path: str) -> None:
    alice, mallory = register_user(server), register_user(server)
    sid = alice.new_session()
    url = f"{server.ws_url}/api/sessions/{sid}/{path}"
    assert await close_code(url, cookie(mallory)) == 4404
    seed = f"{server.ws_url}/ws?session_uuid={sid}&terminal_id=t1"
    assert await close_code(seed, cookie(mallory)) == 4404
    assert (
        await close_code(f"{server.ws_url}/api/sessions/not-a-uuid/{path}", cookie(alice)) == 4404
    )


async def test_a_terminal_of_another_session_is_not_reachable(server: LiveServer) -> None:
    alice, mallory = register_user(server), register_user(server)
    a_sid = alice.new_session()
    t = await Term.open(server, alice, a_sid, tid="shared")
    await t.run("export WHO=alice")
    # The same terminal id in another session (of another user, or of the same user) is a
    # different shell: ids are scoped to their session.
    for u, sid in ((mallory, mallory.new_session()), (alice, alice.new_session())):
        other = await Term.open(server, u, sid, tid="shared")
        assert other.controls[0]["reattached"] is False
        _, out = await other.run("echo who=$WHO.")
        assert b"who=." in out
        await other.close()
    assert mallory.client.get(f"/api/sessions/{a_sid}/terminals").status_code == 404
    assert mallory.client.delete(f"/api/sessions/{a_sid}/terminals/shared").status_code == 404
    assert mallory.client.get(f"/api/sessions/{a_sid}/commands").status_code == 404
    assert mallory.client.post(f"/api/sessions/{a_sid}/sandbox/stop").status_code == 404
    await t.close()


async def test_invalid_terminal_id_is_refused(server: LiveServer) -> None:
    u = register_user(server)
    sid = u.new_session()
    assert await close_code(f"{server.ws_url}/api/sessions/{sid}/terminals/a.b", cookie(u)) == 4400
    long_id = "x" * 65
    assert (
        await close_code(f"{server.ws_url}/api/sessions/{sid}/terminals/{long_id}", cookie(u))
        == 4400
    )
