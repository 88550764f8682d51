"""The lean read/save of one file (api/fastfiles.py) answers exactly as the FastAPI routes do.

Two servers on one database (each backend): the lean path on and off
(``http_fast_file_routes``). Every request, good or bad, goes to both; status, JSON body and the
security headers must match, and the lean server must have answered the well-formed ones itself
(and handed the rest to FastAPI).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from coolcoding.api.fastfiles import FILE_ROUTE, FastFileRoutes, save_body
from coolcoding.api.routes import workspace as workspace_routes
from coolcoding.app import create_app
from coolcoding.filesync.paths import DEFAULT_RULES
from tests.conftest import (
    LiveServer,
    _free_port,
    _ServerThread,
    make_database,
    make_settings,
    searchable,
)

MAX_FILE = 4000


@pytest.fixture(
    scope="module",
    params=[("sqlite", True), ("postgres", True), ("postgres", False)],
    ids=["sqlite", "postgres", "postgres-history-off"],
)
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, LiveServer]]:
    backend, history = request.param
    root = searchable(tmp_path_factory.mktemp(f"fastfiles-{backend}"))
    db = make_database(backend, root)
    servers: list[LiveServer] = []
    threads: list[_ServerThread] = []
    try:
        for fast in (True, False):
            data = root / ("fast" if fast else "slow")
            data.mkdir()
            settings = make_settings(
                data,
                db.url,
                http_fast_file_routes=fast,
                max_file_bytes=MAX_FILE,
                history_enabled=history,
            )
            app = create_app(settings)
            port = _free_port()
            thread = _ServerThread(app, port)
            thread.start()
            threads.append(thread)
            servers.append(LiveServer(f"http://127.0.0.1:{port}", settings, app, backend))
        yield servers[0], servers[1]
    finally:
        for t in threads:
            t.stop()
        db.drop()


def _lean(server: LiveServer) -> FastFileRoutes:
    app: Any = server.app.middleware_stack
    while not isinstance(app, FastFileRoutes):
        app = app.app
    return app


def _user(server: LiveServer) -> tuple[str, str]:
    """A new user's token and a session of theirs."""
    name = f"ff{secrets.token_hex(5)}"
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        r = c.post(
            "/api/users/register",
            json={"username": name, "email": f"{name}@example.com", "password": "correct horse"},
        )
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        r = c.post(
            "/api/sessions/", json={"name": "t"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 201, r.text
        return token, str(r.json()["uuid"])


def _both(
    pair: tuple[LiveServer, LiveServer], method: str, url: str, **kw: Any
) -> tuple[httpx.Response, httpx.Response]:
    out = []
    for server in pair:
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            out.append(c.request(method, url, **kw))
    return out[0], out[1]


def _same(fast: httpx.Response, slow: httpx.Response) -> None:
    assert fast.status_code == slow.status_code, (fast.text, slow.text)
    assert fast.headers.get("content-type") == slow.headers.get("content-type")
    for name in ("content-security-policy", "x-frame-options", "x-content-type-options"):
        assert fast.headers.get(name) == slow.headers.get(name) is not None, name
    body_fast, body_slow = fast.json(), slow.json()
    if isinstance(body_fast, dict):
        body_fast.pop("updated_at", None)
        body_slow.pop("updated_at", None)
    assert body_fast == body_slow


def test_the_lean_pattern_is_the_routes_pattern(pair: tuple[LiveServer, LiveServer]) -> None:
    del pair
    patterns = {
        route.path_regex.pattern
        for route in workspace_routes.router.routes
        if getattr(route, "endpoint", None)
        in (workspace_routes.read_file, workspace_routes.save_file)
    }
    assert patterns == {FILE_ROUTE.pattern}


def test_bad_input_gets_the_same_answer(pair: tuple[LiveServer, LiveServer]) -> None:
    fast_server = pair[0]
    token, sid = _user(fast_server)
    other_token, other_sid = _user(fast_server)
    auth = {"Authorization": f"Bearer {token}"}
    base = f"/api/workspace/{sid}/file"
    # A file and a folder to conflict with (written through the slow server).
    with httpx.Client(base_url=pair[1].base_url, timeout=30, headers=auth) as c:
        assert c.post(f"{base}/dir/a.txt", json={"content": "a"}).status_code == 201
    lean = _lean(fast_server)
    long_path = "x" * (DEFAULT_RULES.max_path_bytes + 1)
    # (method, url, request kwargs, taken by the lean path)
    cases: list[tuple[str, str, dict[str, Any], bool]] = [
        ("POST", f"{base}/n.txt", {"json": {"content": "x"}}, False),  # no login
        (
            "POST",
            f"{base}/n.txt",
            {"json": {"content": "x"}, "headers": {"Authorization": "Bearer nope"}},
            True,
        ),
        (
            "POST",
            f"{base}/n.txt",
            {"json": {"content": "x"}, "headers": {"Authorization": f"Bearer {other_token}"}},
            True,
        ),
        (
            "POST",
            "/api/workspace/not-a-uuid/file/n.txt",
            {"json": {"content": "x"}, "headers": auth},
            True,
        ),
        (
            "POST",
            f"/api/workspace/{other_sid}/file/n.txt",
            {"json": {"content": "x"}, "headers": auth},
            True,
        ),
        (
            "POST",
            f"{base}/n.txt",
            {"content": b"{not json", "headers": {**auth, "Content-Type": "application/json"}},
            False,
        ),
        (
            "POST",
            f"{base}/n.txt",
            {"content": b"", "headers": {**auth, "Content-Type": "application/json"}},
            False,
        ),
        ("POST", f"{base}/n.txt", {"json": ["content"], "headers": auth}, False),
        ("POST", f"{base}/n.txt", {"json": {}, "headers": auth}, False),
        ("POST", f"{base}/n.txt", {"json": {"content": 5}, "headers": auth}, False),
        (
            "POST",
            f"{base}/n.txt",
            {"json": {"content": "x", "encoding": "latin1"}, "headers": auth},
            False,
        ),
        (
            "POST",
            f"{base}/n.txt",
            {"json": {"content": "x", "base_version": -1}, "headers": auth},
            False,
        ),
        (
            "POST",
            f"{base}/n.txt",
            {"json": {"content": "x", "base_version": 2**31}, "headers": auth},
            False,
        ),
        (
            "POST",
            f"{base}/n.txt",
            {"json": {"content": "x", "base_version": "x"}, "headers": auth},
            False,
        ),
        (
            "POST",
            f"{base}/n.txt",
            {"content": b'{"content": "x"}', "headers": {**auth, "Content-Type": "text/plain"}},
            False,
        ),
        (
            "POST",
            f"{base}/n.txt",
            {"json": {"content": "***", "encoding": "base64"}, "headers": auth},
            True,
        ),
        (
            "POST",
            f"{base}/n.txt",
            {
                "content": b'{"content": "\\ud800"}',
                "headers": {**auth, "Content-Type": "application/json"},
            },
            True,
        ),
        ("POST", f"{base}/%2E%2E/n.txt", {"json": {"content": "x"}, "headers": auth}, True),
        ("POST", f"{base}/a%0Ab.txt", {"json": {"content": "x"}, "headers": auth}, True),
        ("POST", f"{base}/{long_path}", {"json": {"content": "x"}, "headers": auth}, False),
        ("POST", f"{base}/", {"json": {"content": "x"}, "headers": auth}, False),
        ("POST", f"{base}/dir", {"json": {"content": "x"}, "headers": auth}, True),
        (
            "POST",
            f"{base}/dir/a.txt",
            {"json": {"content": "b", "base_version": 7}, "headers": auth},
            True,
        ),
        (
            "POST",
            f"{base}/dir/a.txt",
            {"json": {"content": "b", "base_version": 0}, "headers": auth},
            True,
        ),
        (
            "POST",
            f"{base}/big.txt",
            {"json": {"content": "x" * (MAX_FILE + 1)}, "headers": auth},
            True,
        ),
        (
            "POST",
            f"{base}/n.txt",
            {"json": {"content": "x"}, "headers": {**auth, "Origin": "https://evil.example"}},
            False,
        ),
        ("GET", f"{base}/dir/a.txt", {}, False),  # no login
        ("GET", f"{base}/dir/a.txt", {"headers": {"Authorization": "Bearer nope"}}, True),
        ("GET", f"{base}/dir", {"headers": auth}, True),
        ("GET", f"{base}/missing.txt", {"headers": auth}, True),
        ("GET", f"{base}/%2E%2E/x", {"headers": auth}, True),
        ("GET", f"/api/workspace/{other_sid}/file/x.txt", {"headers": auth}, True),
        ("GET", f"{base}/{long_path}", {"headers": auth}, False),
        ("GET", f"{base}/dir/a.txt?raw=maybe", {"headers": auth}, False),
        ("PUT", f"{base}/dir/a.txt", {"json": {"content": "x"}, "headers": auth}, False),
    ]
    for method, url, kw, taken in cases:
        before = lean.taken
        fast, slow = _both(pair, method, url, **kw)
        assert fast.status_code >= 400, (method, url, fast.text)
        assert fast.status_code < 500, (method, url, fast.text)
        _same(fast, slow)
        assert lean.taken - before == int(taken), (method, url)


def test_good_requests_get_the_same_answer(pair: tuple[LiveServer, LiveServer]) -> None:
    token, sid = _user(pair[0])
    cookie = pair[0].settings.session_cookie_name
    lean = _lean(pair[0])
    for i, (server, creds) in enumerate(
        (
            (pair[0], {"headers": {"Authorization": f"Bearer {token}"}}),
            (pair[0], {"cookies": {cookie: token}}),
        )
    ):
        del server
        before = lean.taken
        answers = []
        for which, s in enumerate(pair):
            path = f"/api/workspace/{sid}/file/p{i}{which}/f.bin"
            with httpx.Client(base_url=s.base_url, timeout=30, **creds) as c:
                created = c.post(path, json={"content": "héllo ✓\n"})
                updated = c.post(path, json={"content": "two", "base_version": 1})
                binary = c.post(
                    path,
                    json={
                        "content": base64.b64encode(b"\x00\xff").decode(),
                        "encoding": "base64",
                        "base_version": None,
                    },
                )
                read = c.get(path)
                raw = c.get(path, params={"raw": "true"})
            answers.append((created, updated, binary, read, raw))
        for fast, slow in zip(*answers, strict=True):
            assert fast.status_code == slow.status_code
            if fast.headers["content-type"] == "application/json":
                a, b = fast.json(), slow.json()
                for d in (a, b):
                    d.pop("updated_at", None)
                    d["path"] = d["path"].replace(f"p{i}0", "").replace(f"p{i}1", "")
                assert a == b
            else:
                assert fast.content == slow.content == b"\x00\xff"
        assert [r.status_code for r in answers[0]] == [201, 200, 200, 200, 200]
        assert answers[0][3].json()["encoding"] == "base64"
        assert lean.taken - before == 4  # all but the ?raw=true read


def test_save_body_takes_only_what_saveln_takes_as_is() -> None:
    assert save_body(b'{"content": "x"}') == ("x", "utf-8", None)
    assert save_body(b'{"content": "x", "encoding": "base64", "base_version": 3}') == (
        "x",
        "base64",
        3,
    )
    for bad in (
        b"[]",
        b"1",
        b'{"content": null}',
        b'{"content": "x", "base_version": true}',
        b'{"content": "x", "base_version": 1.0}',
        b'{"content": "x", "encoding": null}',
        b'{"content": "x", "base_version": 2147483648}',
        b"\xff",
    ):
        assert save_body(bad) is None, bad


def test_off_means_no_lean_path(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", http_fast_file_routes=False
    )
    app = create_app(settings)
    assert not any(m.cls is FastFileRoutes for m in app.user_middleware)


def test_a_chunked_body_over_the_limit_is_413_on_both(pair: tuple[LiveServer, LiveServer]) -> None:
    """RequestGuards answers 413 while the body streams in and tells the app the client left:
    the lean path hands that to FastAPI, whose answer is dropped, as before."""
    token, sid = _user(pair[0])
    settings = pair[0].settings
    limit = max(settings.max_file_bytes, settings.exec_max_stdin_bytes) * 4 // 3 + 256 * 1024
    lean = _lean(pair[0])
    before = lean.taken

    def chunks() -> Iterator[bytes]:
        yield b'{"content": "'
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536
        yield b'"}'

    for server in pair:
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            r = c.post(
                f"/api/workspace/{sid}/file/big.txt",
                content=chunks(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
        assert r.status_code == 413 and r.json()["error"] == "request_too_large"
        assert r.headers["x-frame-options"] == "DENY"
    assert lean.taken == before
