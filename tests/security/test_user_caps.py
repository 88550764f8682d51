"""Finding 9: one user must not use up what the whole host shares. 135 sessions with a started
sandbox each took 123 of root's 128 inotify instances, then every start failed for everyone.
Now per-user caps on sessions, running sandboxes and terminals, and a per-server cap on running
sandboxes, each answered with a clear error naming its setting; other users keep working.
Both databases, real sandboxes, real WebSockets."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
import websockets

from coolcoding.sandbox.local.process import credentials_for
from tests.conftest import LiveServer, UserClient, register_user, searchable, start_live_server
from tests.sandbox_helpers import Term, cookie, hold_all_inotify_instances

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    srv, stop = start_live_server(
        str(request.param),
        searchable(tmp_path_factory.mktemp(f"caps-{request.param}")),
        max_sessions_per_user=3,
        max_running_sandboxes_per_user=2,
        sandbox_max_running=3,
        terminal_max_per_user=2,
    )
    yield srv
    stop()


def finished(u: UserClient, eid: str, timeout: float = 60.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, object] = u.client.get(f"/api/executions/{eid}").json()
        if body["status"] == "finished":
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def start(u: UserClient, sid: str) -> tuple[int, dict[str, object]]:
    r = u.client.post(f"/api/sessions/{sid}/sandbox/start")
    return r.status_code, r.json()


def test_caps_on_sessions_and_running_sandboxes(server: LiveServer) -> None:
    a, b, c = (register_user(server, p) for p in ("hog", "other", "third"))
    a_sids = [a.new_session(f"s{i}") for i in range(3)]
    r = a.client.post("/api/sessions/", json={"name": "one too many"})
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["error"] == "too_many_sessions" and body["setting"] == "max_sessions_per_user"
    assert "COOLCODING_MAX_SESSIONS_PER_USER" in body["message"]
    assert len(a.client.get("/api/sessions/").json()) == 3
    b_sid = b.new_session()  # another user is not limited by A's sessions
    c_sid = c.new_session()

    assert start(a, a_sids[0])[0] == 200 and start(a, a_sids[1])[0] == 200
    assert start(a, a_sids[0])[0] == 200  # already running: not a new one
    status, body = start(a, a_sids[2])
    assert status == 409 and body["error"] == "too_many_running_sandboxes", body
    assert "COOLCODING_MAX_RUNNING_SANDBOXES_PER_USER" in str(body["message"])
    session = a.client.get(f"/api/sessions/{a_sids[2]}").json()  # what the IDE is told
    assert session["sandbox_status"] == "error"
    r = a.client.post(f"/api/workspace/{a_sids[2]}/file/main.py", json={"content": "print(1)"})
    assert r.status_code in (200, 201), r.text
    r = a.client.post(f"/api/sessions/{a_sids[2]}/run", json={"path": "main.py"})
    assert r.status_code == 202, r.text
    run = finished(a, r.json()["id"])  # a run says why too
    assert "COOLCODING_MAX_RUNNING_SANDBOXES_PER_USER" in str(run["message"]), run
    assert start(b, b_sid)[0] == 200  # B still starts: A holds only its share

    status, body = start(c, c_sid)  # the server's own cap (below the host's limits)
    assert status == 503 and body["error"] == "server_sandbox_limit", body
    assert body["setting"] == "sandbox_max_running"

    assert a.client.post(f"/api/sessions/{a_sids[0]}/sandbox/stop").status_code == 200
    assert start(c, c_sid)[0] == 200
    assert start(a, a_sids[2])[0] == 503  # A is under its cap now, but the server is full
    for u, sid in ((a, a_sids[1]), (b, b_sid), (c, c_sid)):
        assert u.client.post(f"/api/sessions/{sid}/sandbox/stop").status_code == 200
    for u in (a, b, c):
        u.client.close()


async def test_terminals_per_user_over_all_sessions(server: LiveServer) -> None:
    a, b = register_user(server, "terms"), register_user(server, "calm")
    s1, s2 = a.new_session("one"), a.new_session("two")
    t1 = await Term.open(server, a, s1, tid="x")
    t2 = await Term.open(server, a, s2, tid="y")
    ws = await websockets.connect(
        f"{server.ws_url}/api/sessions/{s1}/terminals/z", additional_headers=cookie(a)
    )
    with pytest.raises(websockets.ConnectionClosed) as info:
        await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 4429
    assert "COOLCODING_TERMINAL_MAX_PER_USER" in info.value.rcvd.reason
    tb = await Term.open(server, b, b.new_session(), tid="x")  # B is not limited by A
    _, out = await tb.run("echo ok-$((6*7))")
    assert b"ok-42" in out
    assert a.client.delete(f"/api/sessions/{s2}/terminals/y").status_code == 204
    t3 = await Term.open(server, a, s1, tid="z")  # room again
    for t in (t1, t2, t3, tb):
        await t.close()
    for u in (a, b):
        for sess in u.client.get("/api/sessions/").json():
            u.client.post(f"/api/sessions/{sess['uuid']}/sandbox/stop")
        u.client.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as the sandbox's uid")
def test_a_host_limit_hit_anyway_is_named_in_the_error(server: LiveServer) -> None:
    """A real exhaustion: the sandbox's uid has no inotify instance left (its agent's watcher
    cannot start), as the kernel does when they are used up (EMFILE). The answer names the
    limit, and the failed start holds no place in the caps."""
    u = register_user(server, "unlucky")
    sid = u.new_session()
    s = server.settings
    uid = credentials_for(sid, s.sandbox_uid_base, s.sandbox_uid_count).uid
    pid, release = hold_all_inotify_instances(uid)
    try:
        for _ in range(3):  # more than max_running_sandboxes_per_user: nothing was counted
            status, body = start(u, sid)
            assert status == 503 and body["error"] == "sandbox_host_limit", body
            assert "fs.inotify.max_user_instances (" in str(body["message"])
    finally:
        os.close(release)
        os.waitpid(pid, 0)
    session = u.client.get(f"/api/sessions/{sid}").json()
    assert session["sandbox_status"] == "error"
    assert start(u, sid)[0] == 200
    assert u.client.post(f"/api/sessions/{sid}/sandbox/stop").status_code == 200
    u.client.close()
