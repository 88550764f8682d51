"""The composition root: a host that cannot run sandboxes still serves the rest of the API, and
every sandbox part answers 503 ``sandbox_unavailable`` with the runtime's reason."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import LiveServer, register_user, searchable, start_live_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # The Kubernetes runtime is not in this build: make_runtime refuses it.
    srv, stop = start_live_server(
        "sqlite", searchable(tmp_path_factory.mktemp("root-nosandbox")), runtime="kubernetes"
    )
    yield srv
    stop()


def test_parts_are_typed_attributes_built_once(server: LiveServer, tmp_path: Path) -> None:
    p = server.platform
    assert p.sandbox_unavailable == "Sandboxes are not available on this server."
    assert (p.runtime, p.sandboxes, p.sync, p.terminals, p.commands) == (None,) * 5
    assert p.executions.unavailable == p.sandbox_unavailable
    assert p.executions.judge.languages is p.languages


def test_sandbox_routes_answer_503_with_the_reason(server: LiveServer) -> None:
    user = register_user(server)
    sid = user.new_session()
    # The rest of the API works.
    r = user.client.post(f"/api/workspace/{sid}/file/a.py", json={"content": "print(1)\n"})
    assert r.status_code in (200, 201), r.text
    r = user.client.get(f"/api/workspace/{sid}/status")
    assert r.status_code == 200 and r.json()["disk_used_bytes"] is None, r.text
    for method, url in [
        ("POST", f"/api/sessions/{sid}/sandbox/start"),
        ("POST", f"/api/sessions/{sid}/sandbox/stop"),
        ("GET", f"/api/sessions/{sid}/terminals"),
        ("DELETE", f"/api/sessions/{sid}/terminals/t1"),
        ("GET", f"/api/sessions/{sid}/commands"),
        ("POST", f"/api/sessions/{sid}/run"),
        ("POST", "/api/executions"),
    ]:
        body_in = {"path": "a.py"} if "run" in url else None
        if url == "/api/executions":
            body_in = {"language": "python", "source": "print(1)"}
        r = user.client.request(method, url, json=body_in)
        assert r.status_code == 503, (method, url, r.text)
        body = r.json()
        assert body["error"] == "sandbox_unavailable", body
        assert "not available on this server" in body["message"]
    # Someone else's session is still 404 first (no information from the 503).
    other = register_user(server)
    r = other.client.post(f"/api/sessions/{sid}/sandbox/start")
    assert r.status_code == 404, r.text
    # The terminal WebSocket closes with the reason.
    url = f"{server.ws_url}/api/sessions/{sid}/terminals/t1"
    with connect(url, additional_headers={"Authorization": f"Bearer {user.token}"}) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert "not available on this server" in closed.value.rcvd.reason
    user.client.close()
    other.client.close()
