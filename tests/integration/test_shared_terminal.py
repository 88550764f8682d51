"""Shared terminals over real WebSockets into a real sandbox: collaborators see the same
terminal; editors type (the history records who), viewers watch read-only (their input never
reaches the PTY), the owner makes a terminal private, a revoked member is disconnected."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.conftest import LiveServer, UserClient, register_user, searchable, start_live_server
from tests.sandbox_helpers import Term, cookie, events_socket, file_items, next_event

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv, stop = start_live_server("sqlite", searchable(tmp_path_factory.mktemp("shterm")))
    yield srv
    stop()


def member(owner: UserClient, sid: str, u: UserClient, role: str) -> None:
    r = owner.client.post(f"/api/sessions/{sid}/members", json={"user": u.username, "role": role})
    assert r.status_code == 201, r.text
    assert u.client.post(f"/api/invitations/{sid}/accept").status_code == 200


async def close_code(ws: object, seconds: float) -> int:
    try:
        async with asyncio.timeout(seconds):
            while True:
                await ws.recv()  # type: ignore[attr-defined]
    except ConnectionClosed as exc:
        assert exc.rcvd is not None
        return exc.rcvd.code
    raise AssertionError("unreachable")


@pytest.fixture
def trio(server: LiveServer) -> Iterator[tuple[str, UserClient, UserClient, UserClient]]:
    owner, editor, viewer = (register_user(server, p) for p in ("own", "edi", "vie"))
    sid = owner.new_session("pair")
    member(owner, sid, editor, "editor")
    member(owner, sid, viewer, "viewer")
    yield sid, owner, editor, viewer
    for u in (owner, editor, viewer):
        u.client.close()


async def test_editor_types_owner_sees_it_and_history_names_the_typist(
    server: LiveServer, trio: tuple[str, UserClient, UserClient, UserClient]
) -> None:
    sid, owner, editor, viewer = trio
    mine = await Term.open(server, owner, sid, "t1")
    theirs = await Term.open(server, editor, sid, "t1")
    assert theirs.controls[0]["reattached"] is True and theirs.controls[0]["read_only"] is False
    msg, _ = await theirs.run("echo $((6*7))")
    assert msg["command"] == "echo $((6*7))"
    seen = await mine.recv_until(lambda m: m is not None and m["type"] == "command")
    assert seen is not None and seen["command"] == "echo $((6*7))"  # the owner saw it run
    assert b"42" in mine.output
    msg, _ = await mine.run("echo owner-was-here")
    assert msg["command"] == "echo owner-was-here"
    # The same tab list for every member.
    listed = [t["id"] for t in viewer.client.get(f"/api/sessions/{sid}/terminals").json()]
    assert listed == ["t1"]
    cmds = viewer.client.get(f"/api/sessions/{sid}/commands").json()
    assert [(c["command"], c["user_id"]) for c in cmds] == [
        ("echo owner-was-here", owner.user_id),
        ("echo $((6*7))", editor.user_id),
    ]
    await theirs.close()
    await mine.close()


async def test_viewer_watches_read_only_and_nothing_reaches_the_pty(
    server: LiveServer, trio: tuple[str, UserClient, UserClient, UserClient]
) -> None:
    sid, owner, _editor, viewer = trio
    mine = await Term.open(server, owner, sid, "t1", cols=100, rows=30)
    watch = await Term.open(server, viewer, sid, "t1")
    assert watch.controls[0]["read_only"] is True
    # The attack: raw keystrokes, a resize, over the viewer's own socket.
    await watch.ws.send(b"touch /workspace/pwned\r")
    err = await watch.recv_until(lambda m: m is not None and m["type"] == "error")
    assert err is not None and err["error"] == "read_only"
    await watch.ws.send(json.dumps({"type": "resize", "cols": 33, "rows": 11}))
    _, out = await mine.run("ls /workspace; stty size")
    assert b"pwned" not in out and b"30 100" in out
    await watch.wait_output(b"30 100")  # the viewer watches the owner's command
    assert "pwned" not in file_items(owner, sid)
    # A viewer cannot open a new shell either.
    ws = await websockets.connect(
        f"{server.ws_url}/api/sessions/{sid}/terminals/t2", additional_headers=cookie(viewer)
    )
    assert await close_code(ws, 10) == 4404
    assert [t["id"] for t in owner.client.get(f"/api/sessions/{sid}/terminals").json()] == ["t1"]
    await watch.close()
    await mine.close()


async def test_private_terminal_drops_collaborators(
    server: LiveServer, trio: tuple[str, UserClient, UserClient, UserClient]
) -> None:
    sid, owner, editor, viewer = trio
    mine = await Term.open(server, owner, sid, "t1")
    ed = await Term.open(server, editor, sid, "t1")
    vw = await Term.open(server, viewer, sid, "t1")
    r = await asyncio.to_thread(
        editor.client.put, f"/api/sessions/{sid}/terminals/t1/private", json={"private": True}
    )
    assert r.status_code == 403
    r = await asyncio.to_thread(
        owner.client.put, f"/api/sessions/{sid}/terminals/t1/private", json={"private": True}
    )
    assert r.status_code == 200
    assert await close_code(ed.ws, 2.0) == 4403
    assert await close_code(vw.ws, 2.0) == 4403
    await mine.run("echo still-mine")
    assert editor.client.get(f"/api/sessions/{sid}/terminals").json() == []
    assert [t["private"] for t in owner.client.get(f"/api/sessions/{sid}/terminals").json()] == [
        True
    ]
    ws = await websockets.connect(
        f"{server.ws_url}/api/sessions/{sid}/terminals/t1", additional_headers=cookie(editor)
    )
    assert await close_code(ws, 10) == 4404
    assert editor.client.get(f"/api/sessions/{sid}/commands").json() == []
    await mine.close()


async def test_revoked_editor_is_dropped_from_the_terminal(
    server: LiveServer, trio: tuple[str, UserClient, UserClient, UserClient]
) -> None:
    sid, owner, editor, _viewer = trio
    ed = await Term.open(server, editor, sid, "t1")
    r = await asyncio.to_thread(
        owner.client.delete, f"/api/sessions/{sid}/members/{editor.user_id}"
    )
    assert r.status_code == 204
    assert await close_code(ed.ws, 2.0) == 4403


async def test_viewer_follows_a_run_an_editor_started(
    server: LiveServer, trio: tuple[str, UserClient, UserClient, UserClient]
) -> None:
    sid, _owner, editor, viewer = trio
    stranger = register_user(server, "str")
    r = editor.client.post(f"/api/workspace/{sid}/file/main.py", json={"content": "print(6*7)\n"})
    assert r.status_code in (200, 201), r.text
    events = await events_socket(server, viewer, sid)
    # The socket subscribes after its handshake and then says the sandbox's status: a run
    # posted before that message could start unseen.
    await next_event(events, lambda e: e["type"] == "sandbox_status", timeout=30)
    r = await asyncio.to_thread(
        editor.client.post, f"/api/sessions/{sid}/run", json={"path": "main.py"}
    )
    assert r.status_code == 202, r.text
    started = await next_event(events, lambda e: e["type"] == "run_started", timeout=60)
    assert started["user_id"] == editor.user_id
    await events.close()
    with viewer.client.stream("GET", started["events"], timeout=60) as sse:
        body = "".join(sse.iter_text())
    assert "42" in body and "event: result" in body
    assert viewer.client.get(f"/api/executions/{started['execution_id']}").status_code == 200
    assert stranger.client.get(f"/api/executions/{started['execution_id']}").status_code == 404
    stranger.client.close()


def test_viewer_uses_a_preview_as_a_visitor_but_starts_nothing(
    server: LiveServer, trio: tuple[str, UserClient, UserClient, UserClient]
) -> None:
    sid, owner, _editor, viewer = trio
    r = viewer.client.post(f"/api/sessions/{sid}/sandbox/start")
    assert (r.status_code, r.json()["error"]) == (403, "forbidden_role")
    assert owner.client.post(f"/api/sessions/{sid}/sandbox/start").status_code == 200
    r = viewer.client.post(f"/api/sessions/{sid}/preview/8000/form", content=b"x=1")
    assert r.status_code not in (403, 404), r.text  # nothing listens: 502, but not refused
    r = viewer.client.get(f"/api/sessions/{sid}/preview/8000/")
    assert r.status_code not in (403, 404), r.text  # nothing listens: 502, but not refused
