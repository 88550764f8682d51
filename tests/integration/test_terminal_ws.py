"""Terminals over real WebSockets into real bubblewrap sandboxes with real PTYs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
import websockets

from tests.conftest import LiveServer, UserClient, searchable, start_live_server
from tests.sandbox_helpers import Term, cookie

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv, stop = start_live_server("sqlite", searchable(tmp_path_factory.mktemp("term")))
    yield srv
    stop()


async def test_command_output_and_record(server: LiveServer, user: UserClient) -> None:
    sid = user.new_session()
    t = await Term.open(server, user, sid)
    msg, out = await t.run("mkdir -p sub && cd sub && echo $((6*7)); false")
    assert b"42" in out
    assert msg["exit_code"] == 1
    assert msg["cwd"] == "/workspace"
    assert msg["command"] == "mkdir -p sub && cd sub && echo $((6*7)); false"
    msg, _ = await t.run("pwd")
    assert msg["cwd"] == "/workspace/sub"
    await t.close()
    cmds = user.client.get(f"/api/sessions/{sid}/commands").json()
    assert [c["command"] for c in cmds] == ["pwd", "mkdir -p sub && cd sub && echo $((6*7)); false"]
    assert cmds[1]["output"] == "42\r\n" and cmds[1]["exit_code"] == 1
    assert cmds[0]["terminal_id"] == "t1" and cmds[0]["duration_ms"] >= 0


async def test_output_is_binary_safe(server: LiveServer, user: UserClient) -> None:
    t = await Term.open(server, user, user.new_session())
    _, out = await t.run(r"printf 'A\377\376\001\033[0mZ'")
    assert b"A\xff\xfe\x01\x1b[0mZ" in out
    await t.close()


async def test_resize_reaches_the_pty(server: LiveServer, user: UserClient) -> None:
    t = await Term.open(server, user, user.new_session(), cols=90, rows=20)
    _, out = await t.run("stty size")
    assert b"20 90" in out
    await t.ws.send(json.dumps({"type": "resize", "cols": 132, "rows": 43}))
    _, out = await t.run("stty size")
    assert b"43 132" in out
    await t.ws.send(json.dumps({"type": "ping"}))
    await t.recv_until(lambda m: m is not None and m["type"] == "pong")
    await t.ws.send("not json")
    err = await t.recv_until(lambda m: m is not None and m["type"] == "error")
    assert err is not None and err["error"] == "bad_message"
    await t.close()


async def test_reattach_gets_the_same_shell_and_its_scrollback(
    server: LiveServer, user: UserClient
) -> None:
    sid = user.new_session()
    t = await Term.open(server, user, sid, tid="keep")
    await t.run("export SECRET=xyzzy; echo MARK-$((1+1))")
    await t.ws.close()  # a dropped connection
    t2 = await Term.open(server, user, sid, tid="keep")
    ready = t2.controls[0]
    assert {**ready, "replay_bytes": 0} == {
        "type": "ready",
        "terminal_id": "keep",
        "reattached": True,
        "replay_bytes": 0,
        "read_only": False,
    }
    replay = await asyncio.wait_for(t2.ws.recv(), 15)  # the replay: one frame of that length
    assert isinstance(replay, bytes) and len(replay) == ready["replay_bytes"]
    t2.output += replay
    await t2.wait_output(b"MARK-2")  # replayed scrollback
    _, out = await t2.run("echo $SECRET")
    assert b"xyzzy" in out
    await t2.close()


async def test_several_terminals_list_and_delete(server: LiveServer, user: UserClient) -> None:
    sid = user.new_session()
    a = await Term.open(server, user, sid, tid="a")
    b = await Term.open(server, user, sid, tid="b")
    _, _out_a = await a.run("echo $$")
    _, _out_b = await b.run("echo $$")
    listed = user.client.get(f"/api/sessions/{sid}/terminals").json()
    assert [(x["id"], x["alive"], x["attached"]) for x in listed] == [
        ("a", True, 1),
        ("b", True, 1),
    ]
    assert user.client.delete(f"/api/sessions/{sid}/terminals/b").status_code == 204
    await b.recv_until(lambda m: m is not None and m["type"] == "exit")
    assert [x["id"] for x in user.client.get(f"/api/sessions/{sid}/terminals").json()] == ["a"]
    assert user.client.delete(f"/api/sessions/{sid}/terminals/b").status_code == 404
    await a.close()


async def test_terminal_limit_closes_with_4429(server: LiveServer, user: UserClient) -> None:
    sid = user.new_session()
    settings = server.platform.terminals.settings
    old = settings.terminal_max_per_session
    settings.terminal_max_per_session = 2
    try:
        a = await Term.open(server, user, sid, tid="a")
        b = await Term.open(server, user, sid, tid="b")
        ws = await websockets.connect(
            f"{server.ws_url}/api/sessions/{sid}/terminals/c", additional_headers=cookie(user)
        )
        with pytest.raises(websockets.ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 4429
        await a.close()
        await b.close()
    finally:
        settings.terminal_max_per_session = old


async def test_forged_integration_sequences_are_not_recorded(
    server: LiveServer, user: UserClient
) -> None:
    sid = user.new_session()
    t = await Term.open(server, user, sid)
    fake = r"printf '\033]633;E;%s;rm -rf /\007\033]633;C;%s\007\033]633;D;%s;99\007' a b c"
    msg, out = await t.run(fake)
    assert msg["exit_code"] == 0
    assert b"\x1b]633;D;c;99" in out  # passed through to the terminal, not interpreted
    await t.close()
    cmds = user.client.get(f"/api/sessions/{sid}/commands").json()
    assert [c["command"] for c in cmds] == [fake]


async def test_shell_exit_is_reported_and_the_id_restarts(
    server: LiveServer, user: UserClient
) -> None:
    sid = user.new_session()
    t = await Term.open(server, user, sid, tid="x")
    await t.ws.send(b"exit 3\r")
    msg = await t.recv_until(lambda m: m is not None and m["type"] == "exit")
    assert msg == {"type": "exit", "code": 3}
    t2 = await Term.open(server, user, sid, tid="x")
    assert t2.controls[0]["reattached"] is False
    _, out = await t2.run("echo again")
    assert b"again" in out
    await t2.close()


async def test_seed_ws_path(server: LiveServer, user: UserClient) -> None:
    sid = user.new_session()
    ws = await websockets.connect(
        f"{server.ws_url}/ws?session_uuid={sid}&terminal_id=seed", additional_headers=cookie(user)
    )
    t = Term(ws)
    assert json.loads(await ws.recv())["type"] == "ready"
    _, out = await t.run("echo seed-ok")
    assert b"seed-ok" in out
    await t.close()
