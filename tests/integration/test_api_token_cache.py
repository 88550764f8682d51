"""API tokens are cached like login tokens (``auth_cache_ttl_s``, services/api_tokens.py): a
revocation and the owner's deletion apply at once on this replica, and the other replicas'
messages (a token revoked, an account deleted there) drop the cached entries."""

from __future__ import annotations

import httpx

from coolcoding.services.accounts import FORGET_LOGINS
from coolcoding.services.api_tokens import FORGET_CACHED, token_hash
from tests.conftest import LiveServer, UserClient, module_live_server, register_user

server = module_live_server("apitokcache", judge0_enabled=True, auth_cache_ttl_s=60.0)
HELLO0 = {"source_code": 'print("hello")\n', "language_id": 71}


def api_token(user: UserClient) -> tuple[int, str]:
    r = user.client.post("/api/tokens", json={"name": "t"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"]), str(r.json()["token"])


def submit(server: LiveServer, raw: str) -> httpx.Response:
    with httpx.Client(base_url=server.base_url, timeout=60) as c:
        return c.post("/judge0/submissions?wait=true", json=HELLO0, headers={"X-Auth-Token": raw})


def cached(server: LiveServer, raw: str) -> bool:
    return token_hash(raw) in server.platform.api_tokens._cache._entries


def test_a_revoked_token_is_refused_at_once(server: LiveServer) -> None:
    user = register_user(server, "atc")
    token_id, raw = api_token(user)
    assert submit(server, raw).status_code == 201
    assert cached(server, raw)
    assert user.client.delete(f"/api/tokens/{token_id}").status_code == 204
    assert submit(server, raw).status_code == 401
    assert not cached(server, raw)


def test_a_deleted_accounts_token_is_refused_at_once(server: LiveServer) -> None:
    user = register_user(server, "atd")
    _, raw = api_token(user)
    assert submit(server, raw).status_code == 201
    r = user.client.request("DELETE", "/api/users/me", json={"password": user.password})
    assert r.status_code == 204, r.text
    assert not cached(server, raw)
    assert submit(server, raw).status_code == 401


async def test_other_replicas_messages_drop_cached_tokens(server: LiveServer) -> None:
    tokens = server.platform.api_tokens
    revoked, deleted, kept = (register_user(server, "atr") for _ in range(3))
    raws = []
    for user in (revoked, deleted, kept):
        token_id, raw = api_token(user)
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            assert c.get("/judge0/about", headers={"X-Auth-Token": raw}).status_code == 200
        raws.append((token_id, raw))
    assert [cached(server, raw) for _, raw in raws] == [True, True, True]
    await tokens._on_replica_message("", {"type": FORGET_CACHED, "id": raws[0][0]})
    await tokens._on_replica_message("", {"type": FORGET_LOGINS, "user_id": deleted.user_id})
    await tokens._on_replica_message("", {"type": FORGET_CACHED, "id": "1"})  # ignored
    assert [cached(server, raw) for _, raw in raws] == [False, False, True]
