"""Attacks on the HTTP API, written as tests: each must fail with a clear 4xx and change nothing."""

import asyncio
import hashlib

import httpx
from sqlalchemy import select

from coolcoding.db.models import LoginSession, User
from coolcoding.platform import Platform
from tests.conftest import LiveServer, UserClient, register_user


def test_cross_site_post_with_the_login_cookie_is_refused(api: UserClient) -> None:
    c = api.client
    r = c.post("/api/sessions/", json={"name": "csrf"}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and r.json()["error"] == "cross_site_request"
    sid = api.new_session()
    r = c.delete(f"/api/sessions/{sid}", headers={"Origin": "http://attacker.test"})
    assert r.status_code == 403
    # same-origin requests from the SPA are fine
    host = api.server.base_url.removeprefix("http://")
    assert (
        c.post(
            "/api/sessions/", json={"name": "ok"}, headers={"Origin": f"http://{host}"}
        ).status_code
        == 201
    )
    assert c.get(f"/api/sessions/{sid}").status_code == 200


def test_form_encoded_body_cannot_pose_as_json(api: UserClient) -> None:
    # a cross-site HTML form can only send text/plain or form bodies
    r = api.client.post(
        "/api/sessions/", content=b'{"name": "via form"}', headers={"Content-Type": "text/plain"}
    )
    assert r.status_code == 422
    assert all(s["name"] != "via form" for s in api.client.get("/api/sessions/").json())


def test_oversized_request_bodies_are_refused_before_being_read(api: UserClient) -> None:
    sid = api.new_session()
    huge = b"x" * (40 * 1024 * 1024)
    r = api.client.post(
        f"/api/workspace/{sid}/file/big.txt",
        content=huge,
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["error"] == "request_too_large"

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"y" * (1024 * 1024)

    r = api.client.post(
        f"/api/workspace/{sid}/file/big.txt",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert api.client.get(f"/api/workspace/{sid}/files").json()["items"] == []


def test_secrets_are_stored_hashed(live_server: LiveServer, api: UserClient) -> None:
    async def load() -> tuple[str, list[str]]:
        p = Platform(live_server.settings)
        try:
            async with p.db.session() as s:
                user = await s.scalar(select(User).where(User.id == api.user_id))
                assert user is not None
                hashes = list(
                    await s.scalars(
                        select(LoginSession.token_hash).where(LoginSession.user_id == api.user_id)
                    )
                )
                return user.password_hash, hashes
        finally:
            await p.db.dispose()

    pw_hash, token_hashes = asyncio.run(load())
    assert pw_hash.startswith("$argon2id$") and api.password not in pw_hash
    assert hashlib.sha256(api.token.encode()).hexdigest() in token_hashes
    assert api.token not in token_hashes


def test_error_responses_never_leak_internals(live_server: LiveServer, api: UserClient) -> None:
    for method, path in [
        ("GET", "/api/sessions/%00"),
        ("GET", "/api/workspace/zzz/files"),
        ("POST", "/api/users/login"),
    ]:
        r = api.client.request(method, path)
        assert 400 <= r.status_code < 500, (path, r.status_code)
        body = r.json()
        assert set(body) >= {"error", "message"}
        assert "Traceback" not in r.text and "sqlalchemy" not in r.text.lower()


def test_user_enumeration_by_login_message_is_not_possible(
    live_server: LiveServer, api: UserClient
) -> None:
    with httpx.Client(base_url=live_server.base_url) as c:
        a = c.post(
            "/api/users/login", json={"username": api.username, "password": "wrong-password"}
        )
        b = c.post(
            "/api/users/login", json={"username": "no-such-user-xyz", "password": "wrong-password"}
        )
    assert a.status_code == b.status_code == 401 and a.json() == b.json()


def test_the_ownership_cache_never_serves_another_user_or_a_deleted_session(
    live_server: LiveServer,
) -> None:
    """Workspace requests check ownership through a per-replica cache (seconds long): warming it
    as the owner must give nothing to another user, and a delete must end access at once."""
    owner, intruder = register_user(live_server), register_user(live_server)
    sid = owner.new_session("cached")
    url = f"/api/workspace/{sid}/file/secret.txt"
    assert owner.client.post(url, json={"content": "owner only"}).status_code == 201
    assert owner.client.get(url).status_code == 200  # the cache now holds (owner, sid)
    for attempt in (
        intruder.client.get(url),
        intruder.client.post(url, json={"content": "mine now"}),
        intruder.client.get(f"/api/workspace/{sid}/files"),
        intruder.client.delete(url),
    ):
        assert attempt.status_code == 404, attempt.text
        assert attempt.json()["error"] == "session_not_found"
    assert owner.client.get(url).json()["content"] == "owner only"

    assert owner.client.delete(f"/api/sessions/{sid}").status_code == 204
    gone = owner.client.post(url, json={"content": "after delete"})
    assert gone.status_code == 404 and gone.json()["error"] == "session_not_found"
