"""Accounts over real HTTP, on SQLite and PostgreSQL."""

import httpx

from tests.conftest import LiveServer, UserClient, register_user


def test_register_login_me_logout(live_server: LiveServer) -> None:
    u = register_user(live_server)
    me = u.client.get("/api/users/me")
    assert me.status_code == 200 and me.json()["username"] == u.username
    # the cookie is HttpOnly and SameSite=Lax
    with httpx.Client(base_url=live_server.base_url) as c:
        r = c.post("/api/users/login", json={"username": u.username, "password": u.password})
        assert r.status_code == 200
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        assert c.get("/api/users/me").status_code == 200
        assert c.post("/api/users/logout").status_code == 204
        assert c.get("/api/users/me").status_code == 401


def test_logout_revokes_the_token_server_side(live_server: LiveServer) -> None:
    u = register_user(live_server)
    bearer = {"Authorization": f"Bearer {u.token}"}
    with httpx.Client(base_url=live_server.base_url) as c:
        assert c.get("/api/users/me", headers=bearer).status_code == 200
        assert c.post("/api/users/logout", headers=bearer).status_code == 204
        r = c.get("/api/users/me", headers=bearer)
        assert r.status_code == 401 and r.json()["error"] == "not_authenticated"


def test_login_by_email_and_wrong_password(live_server: LiveServer) -> None:
    u = register_user(live_server)
    with httpx.Client(base_url=live_server.base_url) as c:
        ok = c.post(
            "/api/users/login",
            json={"username": f"{u.username}@example.com", "password": u.password},
        )
        assert ok.status_code == 200
        bad = c.post("/api/users/login", json={"username": u.username, "password": "nope-nope"})
        assert bad.status_code == 401 and bad.json()["error"] == "invalid_credentials"
        unknown = c.post("/api/users/login", json={"username": "nobody-here", "password": "x" * 10})
        assert unknown.status_code == 401 and unknown.json()["message"] == bad.json()["message"]


def test_registration_validation_errors_are_clear(live_server: LiveServer) -> None:
    u = register_user(live_server)
    with httpx.Client(base_url=live_server.base_url) as c:
        cases = [
            (
                {"username": u.username, "email": "other@example.com", "password": "longenough"},
                409,
                "username_taken",
            ),
            (
                {
                    "username": "freshname1",
                    "email": f"{u.username}@example.com",
                    "password": "longenough",
                },
                409,
                "email_taken",
            ),
            # The username, email and password rules are stated in the OpenAPI schema, so they
            # answer 422 with the field named (docs/API.md), like any schema violation.
            ({"username": "ab", "email": "a@b.io", "password": "longenough"}, 422, "username"),
            (
                {"username": "bad name!", "email": "a@b.io", "password": "longenough"},
                422,
                "username",
            ),
            (
                {"username": "okname", "email": "not-an-email", "password": "longenough"},
                422,
                "email",
            ),
            # The minimum length is a setting: stated in the schema, checked by the service.
            ({"username": "okname", "email": "a@b.io", "password": "short"}, 400, "weak_password"),
            ({"username": "okname"}, 422, "email"),
        ]
        for body, status, code in cases:
            r = c.post("/api/users/register", json=body)
            assert r.status_code == status, (body, r.text)
            if status == 422:
                assert r.json()["error"] == "validation_error" and r.json()["message"]
                assert code in {f["loc"][-1] for f in r.json()["fields"]}, r.text
            else:
                assert r.json()["error"] == code and r.json()["message"]
        r = c.post(
            "/api/users/register",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 422 and r.json()["error"] == "validation_error"


def test_user_by_id_is_self_only(make_user) -> None:  # type: ignore[no-untyped-def]
    a: UserClient = make_user()
    b: UserClient = make_user()
    assert a.client.get(f"/api/users/{a.user_id}").status_code == 200
    r = a.client.get(f"/api/users/{b.user_id}")
    assert r.status_code == 404 and r.json()["error"] == "user_not_found"


def test_unauthenticated_requests_get_401_json(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.base_url) as c:
        for path in ["/api/users/me", "/api/sessions/"]:
            r = c.get(path)
            assert r.status_code == 401 and r.json()["error"] == "not_authenticated"
        r = c.get("/api/users/me", headers={"Authorization": "Bearer forged-token"})
        assert r.status_code == 401


def test_health_reports_the_database(live_server: LiveServer) -> None:
    r = httpx.get(f"{live_server.base_url}/api/health/")
    assert r.status_code == 200
    body = r.json()
    assert body["database"]["status"] == "ok"
    assert body["database"]["dialect"] == (
        "sqlite" if live_server.backend == "sqlite" else "postgresql"
    )
    assert httpx.get(f"{live_server.base_url}/api/openapi.json").status_code == 200
    assert httpx.get(f"{live_server.base_url}/docs").status_code == 200
