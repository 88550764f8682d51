"""Login is rate-limited per account and per IP (in-process, and in Redis across replicas)."""

from pathlib import Path

import httpx
import pytest

from tests.conftest import register_user, start_live_server


@pytest.mark.parametrize("with_redis", [False, True], ids=["memory", "redis"])
def test_failed_logins_are_limited_per_account_with_429(tmp_path: Path, with_redis: bool) -> None:
    extra = {"redis_url": "redis://127.0.0.1:6379/0"} if with_redis else {}
    server, stop = start_live_server(
        "sqlite",
        tmp_path,
        login_rate_limit=3,
        login_rate_window_s=60,
        trusted_proxies=["127.0.0.1"],
        **extra,
    )
    try:
        u = register_user(server)
        with httpx.Client(base_url=server.base_url) as c:
            for _ in range(3):
                assert (
                    c.post(
                        "/api/users/login", json={"username": u.username, "password": "wrong-pass"}
                    ).status_code
                    == 401
                )
            r = c.post("/api/users/login", json={"username": u.username, "password": u.password})
            assert r.status_code == 429
            assert r.json()["error"] == "rate_limited" and int(r.headers["retry-after"]) > 0
            # the client IP has 3 failures too: another account from the same IP is limited
            v = register_user(server)
            same_ip = c.post(
                "/api/users/login", json={"username": v.username, "password": v.password}
            )
            assert same_ip.status_code == 429
            # ... but not from another IP (X-Forwarded-For from the configured loopback proxy)
            other_ip = c.post(
                "/api/users/login",
                json={"username": v.username, "password": v.password},
                headers={"X-Forwarded-For": "10.9.9.9"},
            )
            assert other_ip.status_code == 200
    finally:
        stop()
        if with_redis:
            import redis

            r = redis.Redis.from_url("redis://127.0.0.1:6379/0")
            for key in r.scan_iter("cc:login:*"):
                r.delete(key)
