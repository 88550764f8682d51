"""Out-of-range numbers and NUL characters: a clear 4xx JSON error before the database is asked,
never a 500 (PostgreSQL refuses NUL in text and integers beyond its column types; SQLite refuses
integers beyond 64 bits). On both databases."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import LiveServer, UserClient

INT64_MAX = 2**63 - 1


def assert_clear_4xx(r: httpx.Response) -> None:
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    body = r.json()
    assert isinstance(body["error"], str) and isinstance(body["message"], str), body


@pytest.mark.parametrize("offset", ["1e20", str(INT64_MAX + 2), str(2**70), "-1", "1.5"])
def test_an_out_of_range_offset_is_a_4xx(api: UserClient, offset: str) -> None:
    assert_clear_4xx(api.client.get("/api/executions", params={"offset": offset}))


@pytest.mark.parametrize("limit", [str(INT64_MAX + 2), "1e20", "0"])
def test_an_out_of_range_limit_is_a_4xx(api: UserClient, limit: str) -> None:
    assert_clear_4xx(api.client.get("/api/executions", params={"limit": limit}))
    sid = api.new_session()
    assert_clear_4xx(api.client.get(f"/api/sessions/{sid}/commands", params={"limit": limit}))


@pytest.mark.parametrize("base_version", [2**70, INT64_MAX + 2, 2**31, -1])
def test_an_out_of_range_base_version_is_a_4xx(api: UserClient, base_version: int) -> None:
    sid = api.new_session()
    body = {"content": "x", "base_version": base_version}
    r = api.client.post(f"/api/workspace/{sid}/file/a.txt", json=body)
    assert_clear_4xx(r)
    assert api.client.get(f"/api/workspace/{sid}/file/a.txt").status_code == 404


@pytest.mark.parametrize("user_id", [str(INT64_MAX + 2), str(2**70)])
def test_an_out_of_range_user_id_is_a_4xx(api: UserClient, user_id: str) -> None:
    assert_clear_4xx(api.client.get(f"/api/users/{user_id}"))


def test_nul_in_a_session_name_is_a_4xx(api: UserClient) -> None:
    assert_clear_4xx(api.client.post("/api/sessions/", json={"name": "a\x00b"}))
    sid = api.new_session()
    assert_clear_4xx(api.client.patch(f"/api/sessions/{sid}", json={"name": "a\x00b"}))
    assert_clear_4xx(api.client.patch(f"/api/sessions/{sid}", json={"entry_file": "m\x00.py"}))
    assert_clear_4xx(api.client.post("/api/sessions/", json={"language": "py\x00"}))
    assert api.client.get(f"/api/sessions/{sid}").json()["name"] == "test"


def test_nul_in_a_file_path_is_a_4xx(api: UserClient) -> None:
    sid = api.new_session()
    base = f"/api/workspace/{sid}"
    assert_clear_4xx(api.client.post(f"{base}/file/a%00b.txt", json={"content": "x"}))
    assert_clear_4xx(api.client.get(f"{base}/file/a%00b.txt"))
    assert_clear_4xx(api.client.post(f"{base}/folder/d%00", json={}))
    assert_clear_4xx(api.client.post(f"{base}/move", json={"from": "a\x00", "to": "b"}))
    assert_clear_4xx(api.client.post(f"/api/sessions/{sid}/run", json={"path": "m\x00.py"}))


def test_nul_in_account_fields_is_a_4xx(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.base_url, timeout=30) as c:
        for body in (
            {"username": "ab\x00cd", "email": "abcd@example.com", "password": "long enough pw"},
            {"username": "abcde", "email": "ab\x00cd@example.com", "password": "long enough pw"},
            {"username": "abcdf", "email": "abcdf@example.com", "password": "long\x00enough pw"},
        ):
            assert_clear_4xx(c.post("/api/users/register", json=body))
        for body in (
            {"username": "ab\x00cd", "password": "whatever"},
            {"username": "ab\x00cd@example.com", "password": "whatever"},
        ):
            assert_clear_4xx(c.post("/api/users/login", json=body))


def test_nul_in_a_judge_job_is_a_4xx(api: UserClient) -> None:
    for body in (
        {"language": "python\x00", "source": "print(1)"},
        {"language": "python", "files": {"m\x00.py": "print(1)"}},
        {"language": "python", "files": {"main.py": "print(1)"}, "entry": "main\x00.py"},
    ):
        assert_clear_4xx(api.client.post("/api/executions", json=body))
