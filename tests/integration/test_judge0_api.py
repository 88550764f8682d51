"""The Judge0-compatible API, driven by the official Judge0 Python SDK (PyPI ``judge0``) and by
plain HTTP, on both databases: API tokens (hashed, revocable), submissions single and batched,
base64, wait, fields, statuses and languages, and callbacks to a loopback server the test runs
(one that answers 500 first, one that hangs: neither blocks anything)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import judge0  # type: ignore[import-untyped]
import pytest
from sqlalchemy import select

from coolcoding.db.engine import Database
from coolcoding.db.models import ApiToken
from tests.conftest import LiveServer, module_live_server, register_user

server = module_live_server(
    "judge0", judge0_callback_private=True, judge0_callback_backoff_s=0.1,
    judge0_callback_timeout_s=1.0, judge0_callback_tries=3,
)  # fmt: skip


@pytest.fixture(scope="module")
def token(server: LiveServer) -> str:
    user = register_user(server, "j0")
    r = user.client.post("/api/tokens", json={"name": "ci"})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def j0(server: LiveServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url + "/judge0", headers={"X-Auth-Token": token},
                        timeout=60)  # fmt: skip


def wait_done(client: httpx.Client, tok: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        body: dict[str, Any] = client.get(f"/submissions/{tok}", params={"fields": "*"}).json()
        if body["status"]["id"] > 2:
            return body
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_the_official_sdk_runs_submissions(server: LiveServer, token: str) -> None:
    client = judge0.Client(server.base_url + "/judge0", headers={"X-Auth-Token": token})
    assert any(lang.id == 71 for lang in client.languages)
    sub = judge0.Submission(source_code="print(input()[::-1])", language=71, stdin="abc",
                            expected_output="cba")  # fmt: skip
    client.create_submission(sub)
    assert sub.token
    deadline = time.monotonic() + 60
    while not sub.is_done():
        assert time.monotonic() < deadline
        time.sleep(0.1)
        client.get_submission(sub)
    assert sub.status == judge0.Status.ACCEPTED and sub.stdout == "cba\n"
    assert sub.time is not None and sub.memory
    # A batch, with a compile error and a wrong answer among them.
    subs = [
        judge0.Submission(source_code="int main(){return 0;}", language=50),
        judge0.Submission(source_code="int main( {", language=50),
        judge0.Submission(source_code="print(1)", language=71, expected_output="2"),
    ]
    client.create_submissions(subs)
    deadline = time.monotonic() + 90
    while not all(s.is_done() for s in subs):
        assert time.monotonic() < deadline
        time.sleep(0.2)
        client.get_submissions(subs)
    assert [s.status for s in subs] == [
        judge0.Status.ACCEPTED, judge0.Status.COMPILATION_ERROR, judge0.Status.WRONG_ANSWER
    ]  # fmt: skip


def test_plain_http_wait_fields_base64_and_statuses(server: LiveServer, token: str) -> None:
    with j0(server, token) as c:
        body = {"source_code": base64.b64encode(b"import sys\nsys.exit(3)").decode(),
                "language_id": 71}  # fmt: skip
        r = c.post("/submissions", params={"base64_encoded": "true", "wait": "true",
                                           "fields": "status,exit_code,token"}, json=body)  # fmt: skip
        assert r.status_code == 201, r.text
        out = r.json()
        assert set(out) == {"status", "exit_code", "token"}
        assert out["status"] == {"id": 11, "description": "Runtime Error (NZEC)"}
        assert out["exit_code"] == 3
        statuses = c.get("/statuses").json()
        assert {"id": 3, "description": "Accepted"} in statuses and len(statuses) == 14
        r = c.post("/submissions", json={"source_code": "print(1)", "language_id": 9999})
        assert r.status_code == 400 and r.json()["error"] == "unknown_language"
        r = c.post("/submissions", params={"base64_encoded": "true"},
                   json={"source_code": "%%%", "language_id": 71})  # fmt: skip
        assert r.status_code == 400 and r.json()["error"] == "invalid_base64"
        r = c.post("/submissions", json={"source_code": "1", "language_id": 71,
                                         "enable_network": True})  # fmt: skip
        assert r.status_code == 400 and r.json()["error"] == "unsupported_field"
        r = c.get("/submissions/nope", params={"fields": "bogus"})
        assert r.status_code == 400


def test_tokens_are_hashed_revocable_and_per_user(server: LiveServer) -> None:
    alice, bob = register_user(server, "ta"), register_user(server, "tb")
    raw = alice.client.post("/api/tokens", json={"name": "laptop"}).json()["token"]
    listed = alice.client.get("/api/tokens").json()
    assert [t["name"] for t in listed] == ["laptop"] and "token" not in listed[0]

    async def stored() -> list[str]:
        db = Database(server.settings)
        try:
            async with db.session() as s:
                return list((await s.scalars(select(ApiToken.token_hash))).all())
        finally:
            await db.dispose()

    hashes = asyncio.run(stored())
    assert raw not in hashes and hashlib.sha256(raw.encode()).hexdigest() in hashes
    with j0(server, raw) as c:
        tok = c.post("/submissions", json={"source_code": "print(1)", "language_id": 71}).json()
        assert "token" in tok
    with j0(server, bob.client.post("/api/tokens", json={"name": "b"}).json()["token"]) as c:
        assert c.get(f"/submissions/{tok['token']}").status_code == 404  # not Bob's
    # Revoked: refused. A made-up or missing token: refused.
    alice.client.delete(f"/api/tokens/{listed[0]['id']}")
    for bad in (raw, "cct_" + "A" * 43, ""):
        with j0(server, bad) as c:
            for path in ("/submissions/x", "/languages", "/statuses", "/config_info"):
                assert c.get(path).status_code == 401
    assert bob.client.delete(f"/api/tokens/{listed[0]['id']}").status_code == 404


class Recorder(BaseHTTPRequestHandler):
    calls: list[tuple[str, dict[str, Any]]] = []
    fail_first: set[str] = set()

    def do_PUT(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path.startswith("/hang"):
            time.sleep(5)
        elif self.path in self.fail_first:
            self.fail_first.discard(self.path)
            self.send_response(500)
            self.end_headers()
            return
        Recorder.calls.append((self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_a: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Recorder.calls.clear()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_callbacks_are_retried_and_a_hanging_one_blocks_nothing(
    server: LiveServer, token: str, receiver: str
) -> None:
    Recorder.fail_first.add("/flaky")
    with j0(server, token) as c:
        hang = c.post("/submissions", json={"source_code": "print(0)", "language_id": 71,
                                            "callback_url": receiver + "/hang"})  # fmt: skip
        flaky = c.post("/submissions", json={"source_code": "print(5)", "language_id": 71,
                                             "callback_url": receiver + "/flaky"})  # fmt: skip
        assert hang.status_code == flaky.status_code == 201
        tok = flaky.json()["token"]
        # Other jobs flow while the hanging callback is pending.
        quick = c.post("/submissions", params={"wait": "true"},
                       json={"source_code": "print(7)", "language_id": 71})  # fmt: skip
        assert quick.json()["status"]["id"] == 3
        deadline = time.monotonic() + 60
        while not any(p == "/flaky" for p, _ in Recorder.calls):
            assert time.monotonic() < deadline, Recorder.calls
            time.sleep(0.1)
    [(_, body)] = [(p, b) for p, b in Recorder.calls if p == "/flaky"]
    assert body["token"] == tok and body["status"]["id"] == 3 and body["stdout"] == "5\n"
    assert "/flaky" not in Recorder.fail_first  # the first try got the 500


def test_a_private_callback_url_is_refused_by_default() -> None:
    """Without judge0_callback_private, a callback to the server's own network is refused (an
    API caller must not make the server PUT to its loopback or LAN)."""
    from coolcoding.errors import InvalidInput
    from coolcoding.execution.callbacks import check_callback_url
    from coolcoding.settings import Settings

    settings = Settings(environment="test")
    for url in ("http://127.0.0.1:6379/", "http://10.1.2.3/x", "http://[::1]/", "ftp://x/",
                "http://169.254.169.254/latest"):  # fmt: skip
        with pytest.raises(InvalidInput):
            asyncio.run(check_callback_url(url, settings))
    asyncio.run(check_callback_url("http://8.8.8.8/hook", settings))  # an address: no lookup
