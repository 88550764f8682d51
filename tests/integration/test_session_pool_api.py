"""The session pool through the API (both databases): ``POST /api/sessions/`` creates the session
with a pooled sandbox's uuid and binds it, so the session is running when the answer comes; its
terminal works as a cold one's; a user at the running-sandbox cap gets a stopped session."""

from __future__ import annotations

import time

import pytest

from coolcoding.sandbox.local.runtime import LocalRuntime
from tests.conftest import LiveServer, UserClient, module_live_server
from tests.sandbox_helpers import Term

pytestmark = pytest.mark.sandbox

server = module_live_server(
    "spool",
    sandbox_session_pool_size=1,
    sandbox_pool_size=0,
    max_running_sandboxes_per_user=2,
    max_sessions_per_user=3,
)


def pooled_names(server: LiveServer) -> set[str]:
    """The pool's ready sandboxes, once it holds one (it is filled in the background)."""
    rt = server.platform.runtime
    assert isinstance(rt, LocalRuntime)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        names = {sb.spec.session_uuid for sb in list(rt.session_pool.ready._ready)}
        if names:
            return names
        time.sleep(0.05)
    raise AssertionError("the session pool did not fill")


async def test_a_new_session_is_running_at_once_on_a_pooled_sandbox(
    server: LiveServer, user: UserClient
) -> None:
    waiting = pooled_names(server)
    r = user.client.post("/api/sessions/", json={"name": "pooled"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["uuid"] in waiting
    assert body["sandbox_status"] == "running"
    t = await Term.open(server, user, body["uuid"])
    msg, out = await t.run("echo $((6*7)); id -un; ls -A /workspace | grep -vc lost+found")
    assert b"42" in out and msg["exit_code"] in (0, 1)
    await t.close()


async def test_a_user_at_the_running_cap_gets_a_stopped_session_not_an_error(
    server: LiveServer, user: UserClient
) -> None:
    for _ in range(2):
        pooled_names(server)
        assert user.client.post("/api/sessions/", json={"name": "x"}).json()["sandbox_status"] == (
            "running"
        )
    pooled_names(server)
    r = user.client.post("/api/sessions/", json={"name": "third"})
    assert r.status_code == 201, r.text
    assert r.json()["sandbox_status"] == "stopped"
    # The pooled sandbox it did not take went back to nobody: destroyed, never reused.
    assert r.json()["uuid"] not in {
        sb.spec.session_uuid
        for sb in list(server.platform.runtime.session_pool.ready._ready)  # type: ignore[attr-defined]
    }


async def test_creations_refused_at_the_session_cap_start_no_sandbox(
    server: LiveServer, user: UserClient
) -> None:
    for _ in range(3):
        pooled_names(server)
        assert user.client.post("/api/sessions/", json={"name": "x"}).status_code == 201
    waiting = pooled_names(server)
    time.sleep(1.5)  # a refill of the last creation's reservation is over
    waiting = pooled_names(server)
    for _ in range(5):
        r = user.client.post("/api/sessions/", json={"name": "over"})
        assert r.status_code == 409, r.text
        assert r.json()["error"] == "too_many_sessions"
    assert pooled_names(server) == waiting  # the same sandbox, given back each time
