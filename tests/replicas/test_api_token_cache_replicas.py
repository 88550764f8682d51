"""An API token (Judge0, ``X-Auth-Token``) revoked through one replica stops working on another
at once, although that one cached it (``auth_cache_ttl_s`` of 10 minutes here): the revocation
is published to the replicas over Redis (services/api_tokens.py, ``FORGET_CACHED``). Two real
``coolcoding serve`` replicas on one PostgreSQL database and a Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.replicas.conftest import Cluster, make_cluster, register

pytestmark = pytest.mark.sandbox
CACHE_TTL_S = 600.0  # far longer than the test: only the published invalidation can drop it
AT_ONCE_S = 5.0  # the bus's delivery (no timing asserted below this; the machine is shared)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    extra = {"COOLCODING_JUDGE0_ENABLED": "true", "COOLCODING_AUTH_CACHE_TTL_S": str(CACHE_TTL_S)}
    with make_cluster(tmp_path_factory, n=2, extra_env=extra) as c:
        yield c


def about(base_url: str, raw: str) -> int:
    r = httpx.get(f"{base_url}/judge0/about", headers={"X-Auth-Token": raw}, timeout=30)
    return r.status_code


def test_a_token_revoked_on_one_replica_is_refused_by_the_other_at_once(pair: Cluster) -> None:
    a, b = pair.replicas
    user = register(a.url)
    with user.client(a.url) as c:
        r = c.post("/api/tokens", json={"name": "ci"})
        assert r.status_code == 201, r.text
        token_id, raw = r.json()["id"], r.json()["token"]
    # B resolves and caches it (several requests: all answered from the cache after the first)
    for _ in range(3):
        assert about(b.url, raw) == 200
    with user.client(a.url) as c:
        assert c.delete(f"/api/tokens/{token_id}").status_code == 204
    assert about(a.url, raw) == 401  # the replica that revoked it
    deadline = time.monotonic() + AT_ONCE_S
    while (status := about(b.url, raw)) == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status == 401, "replica B still accepts the revoked token (its cache kept it)"
    # and a token that was not revoked keeps working on both
    with user.client(a.url) as c:
        raw2 = c.post("/api/tokens", json={"name": "kept"}).json()["token"]
    assert about(b.url, raw2) == 200 and about(a.url, raw2) == 200
