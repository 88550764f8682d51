"""Coding sessions over real HTTP: CRUD and isolation between users."""

import uuid

from tests.conftest import UserClient


def test_create_list_get_patch_delete(api: UserClient) -> None:
    c = api.client
    r = c.post("/api/sessions/", json={"name": "My project", "language": "python"})
    assert r.status_code == 201
    s = r.json()
    assert s["name"] == "My project" and s["sandbox_status"] == "stopped" and uuid.UUID(s["uuid"])
    assert s["created_at"].endswith("Z") or "+" in s["created_at"]
    listed = c.get("/api/sessions/").json()
    assert [x["uuid"] for x in listed] == [s["uuid"]]
    r = c.patch(f"/api/sessions/{s['uuid']}", json={"name": "Renamed", "entry_file": "src/app.py"})
    assert (
        r.status_code == 200
        and r.json()["name"] == "Renamed"
        and r.json()["entry_file"] == "src/app.py"
    )
    r = c.get(f"/api/sessions/{s['uuid']}")
    assert r.status_code == 200 and r.json()["name"] == "Renamed"
    assert c.delete(f"/api/sessions/{s['uuid']}").status_code == 204
    assert c.get(f"/api/sessions/{s['uuid']}").status_code == 404
    assert c.get("/api/sessions/").json() == []


def test_another_users_session_answers_404_not_403(make_user) -> None:  # type: ignore[no-untyped-def]
    alice: UserClient = make_user()
    mallory: UserClient = make_user()
    sid = alice.new_session("secret")
    alice.client.post(f"/api/workspace/{sid}/file/secret.txt", json={"content": "top secret"})
    for method, path, body in [
        ("GET", f"/api/sessions/{sid}", None),
        ("PATCH", f"/api/sessions/{sid}", {"name": "pwned"}),
        ("DELETE", f"/api/sessions/{sid}", None),
        ("GET", f"/api/workspace/{sid}/files", None),
        ("GET", f"/api/workspace/{sid}/file/secret.txt", None),
        ("POST", f"/api/workspace/{sid}/file/secret.txt", {"content": "overwritten"}),
        ("DELETE", f"/api/workspace/{sid}/file/secret.txt", None),
        ("GET", f"/api/workspace/{sid}/status", None),
    ]:
        r = mallory.client.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"] == "session_not_found"
    # nothing changed for alice
    assert (
        alice.client.get(f"/api/workspace/{sid}/file/secret.txt").json()["content"] == "top secret"
    )
    assert alice.client.get(f"/api/sessions/{sid}").json()["name"] == "secret"


def test_bad_session_input_is_refused_clearly(api: UserClient) -> None:
    c = api.client
    assert c.get("/api/sessions/not-a-uuid").status_code == 404
    r = c.post("/api/sessions/", json={"name": ""})
    assert r.status_code == 422 and r.json()["error"] == "validation_error"
    r = c.post("/api/sessions/", json={"name": "x" * 300})
    assert r.status_code == 422
    r = c.post("/api/sessions/", json={"name": "cobol", "language": "cobol"})
    # the schema lists the language ids: refused by validation, before the service
    assert r.status_code == 422 and r.json()["error"] == "validation_error"
    for lang in ["python", "javascript", "c", "cpp", "java", "rust", "bash"]:
        assert c.post("/api/sessions/", json={"name": lang, "language": lang}).status_code == 201, (
            lang
        )
    sid = api.new_session()
    r = c.patch(f"/api/sessions/{sid}", json={"entry_file": "../../etc/passwd"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_path"


def test_sessions_are_listed_most_recently_accessed_first(api: UserClient) -> None:
    a = api.new_session("a")
    b = api.new_session("b")
    api.client.get(f"/api/sessions/{a}")
    order = [s["uuid"] for s in api.client.get("/api/sessions/").json()]
    assert order == [a, b]
