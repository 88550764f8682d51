"""Finding 13 (accounts): forged X-Forwarded-For, locking the owner out with wrong passwords,
registration floods, case-variant accounts. Clients use real distinct loopback source addresses
(127.0.0.2, 127.0.0.3, ...) as distinct client IPs."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from coolcoding.db.models import LoginSession
from coolcoding.services.accounts import AccountService
from coolcoding.services.ratelimit import RateLimiter
from tests.conftest import LiveServer, UserClient, start_live_server

PASSWORD = "correct horse battery"


def client_from(server: LiveServer, source: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=server.base_url, transport=transport, timeout=30)


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Small limits, no trusted proxy; the account delay is long enough that no test waits it
    out (no timing in assertions)."""
    server, stop = start_live_server(
        "sqlite",
        tmp_path_factory.mktemp("login-attacks"),
        login_rate_limit=6,
        login_account_free_failures=3,
        login_account_delay_s=60,
        register_rate_limit=3,
    )
    yield server
    stop()


def _register(c: httpx.Client, name: str | None = None) -> httpx.Response:
    name = name or f"u{secrets.token_hex(5)}"
    return c.post(
        "/api/users/register",
        json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
    )


def _login(c: httpx.Client, username: str, password: str, **kw: object) -> httpx.Response:
    return c.post("/api/users/login", json={"username": username, "password": password}, **kw)  # type: ignore[arg-type]


def _login_ips(server: LiveServer, username: str) -> list[str | None]:
    async def q() -> list[str | None]:
        from coolcoding.db.models import User

        async with server.platform.db.session() as s:
            rows = await s.scalars(
                select(LoginSession.ip).join(User).where(User.username == username)
            )
            return list(rows)

    return asyncio.run(q())


def test_forged_forwarded_for_does_not_bypass_the_per_ip_limit(strict_server: LiveServer) -> None:
    with client_from(strict_server, "127.0.0.5") as c:
        codes = []
        for i in range(8):  # different unknown accounts, so only the IP limit can apply
            r = _login(
                c,
                f"ghost{i}{secrets.token_hex(3)}",
                "wrong",
                headers={"X-Forwarded-For": f"10.0.0.{i}"},
            )
            codes.append(r.status_code)
        assert codes[:6] == [401] * 6
        assert codes[6:] == [429, 429], codes


def test_forwarded_for_is_not_recorded_as_the_login_address(strict_server: LiveServer) -> None:
    with client_from(strict_server, "127.0.0.6") as c:
        r = c.post(
            "/api/users/register",
            json={"username": "xffuser", "email": "xff@example.com", "password": PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
        assert r.status_code == 201, r.text
    assert _login_ips(strict_server, "xffuser") == ["127.0.0.6"]


def test_forwarded_for_is_believed_from_a_trusted_proxy(tmp_path: Path) -> None:
    server, stop = start_live_server("sqlite", tmp_path, trusted_proxies=["127.0.0.0/8"])
    try:
        with httpx.Client(base_url=server.base_url) as c:
            r = c.post(
                "/api/users/register",
                json={"username": "proxied", "email": "p@example.com", "password": PASSWORD},
                headers={"X-Forwarded-For": "198.51.100.7, 127.0.0.9"},
            )
            assert r.status_code == 201, r.text
        assert _login_ips(server, "proxied") == ["198.51.100.7"]
    finally:
        stop()


@pytest.mark.parametrize(
    ("peer", "xff", "trusted", "expected"),
    [
        ("127.0.0.1", "10.1.1.1", [], "127.0.0.1"),
        ("127.0.0.1", "10.1.1.1", ["127.0.0.1"], "10.1.1.1"),
        ("127.0.0.1", "6.6.6.6, 10.1.1.1", ["127.0.0.1"], "10.1.1.1"),  # client-forged left part
        ("127.0.0.1", "6.6.6.6, 10.1.1.1, 10.0.0.2", ["127.0.0.1", "10.0.0.0/24"], "10.1.1.1"),
        ("192.0.2.1", "10.1.1.1", ["127.0.0.1"], "192.0.2.1"),  # not a proxy: header ignored
        ("127.0.0.1", "not-an-ip", ["127.0.0.1"], "127.0.0.1"),
    ],
)
def test_client_ip_resolution(peer: str, xff: str, trusted: list[str], expected: str) -> None:
    from coolcoding.api.clientip import resolve_client_ip

    assert resolve_client_ip(peer, xff, trusted) == expected


def test_wrong_passwords_do_not_lock_the_owner_out(strict_server: LiveServer) -> None:
    with client_from(strict_server, "127.0.0.3") as owner:
        r = _register(owner)
        assert r.status_code == 201, r.text
        username = r.json()["user"]["username"]
        assert "cc_device" in owner.cookies
        owner.post("/api/users/logout")

        with client_from(strict_server, "127.0.0.2") as attacker:
            codes = [_login(attacker, username, f"guess{i}").status_code for i in range(6)]
            assert codes[:3] == [401, 401, 401]
            assert codes[3:] == [429, 429, 429], codes  # slowed down, password not even checked
            # Even the right password is refused to a browser that never logged in here.
            stranger = _login(attacker, username, PASSWORD)
            assert stranger.status_code == 429 and int(stranger.headers["Retry-After"]) > 0

        # The owner's browser (device cookie of an earlier login) gets in from anywhere.
        with client_from(strict_server, "127.0.0.4") as elsewhere:
            elsewhere.cookies.set("cc_device", owner.cookies["cc_device"])
            r = _login(elsewhere, username, PASSWORD)
            assert r.status_code == 200, r.text
        r = _login(owner, username, PASSWORD)
        assert r.status_code == 200, r.text


def test_a_device_cookie_of_another_account_does_not_pass(strict_server: LiveServer) -> None:
    with client_from(strict_server, "127.0.0.7") as c:
        victim = _register(c).json()["user"]["username"]
        _register(c)  # this browser's device cookie is now the second account's
        c.post("/api/users/logout")
        for i in range(3):
            assert _login(c, victim, f"guess{i}").status_code == 401
        assert _login(c, victim, PASSWORD).status_code == 429
        c.cookies.set("cc_device", "1.forged.0123456789abcdef0123456789abcdef")
        assert _login(c, victim, PASSWORD).status_code == 429


def test_account_delay_doubles_and_is_capped(tmp_path: Path) -> None:
    from coolcoding.db.engine import Database
    from tests.conftest import make_settings

    settings = make_settings(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path}/d.db",
        login_account_free_failures=2,
        login_account_delay_s=100,
        login_account_delay_max_s=500,
    )

    async def waits() -> list[int]:
        db = Database(settings)
        accounts = AccountService(db, settings, RateLimiter(1000, 60))
        out = []
        for _ in range(7):
            out.append(round(await accounts._account_wait("k") / 10) * 10)
            await accounts.account_failures.hit("k")
        await db.dispose()
        return out

    assert asyncio.run(waits()) == [0, 0, 100, 200, 400, 500, 500]


def test_registrations_are_limited_per_ip(strict_server: LiveServer) -> None:
    with client_from(strict_server, "127.0.0.8") as c:
        codes = [_register(c).status_code for _ in range(3)]
        assert codes == [201, 201, 201]
        r = _register(c)
        assert r.status_code == 429, r.text
        assert "register_rate_limit" in r.json()["message"] and int(r.headers["Retry-After"]) > 0
    with client_from(strict_server, "127.0.0.9") as other:
        assert _register(other).status_code == 201


def test_usernames_and_emails_are_case_insensitive(
    make_user: Callable[[], UserClient], live_server: LiveServer
) -> None:
    """Both databases: a case variant of a username or email is the same account."""
    u = make_user()
    with httpx.Client(base_url=live_server.base_url) as c:
        r = c.post(
            "/api/users/register",
            json={
                "username": u.username.upper(),
                "email": f"x{secrets.token_hex(4)}@example.com",
                "password": PASSWORD,
            },
        )
        assert r.status_code == 409 and r.json()["error"] == "username_taken", r.text
        r = c.post(
            "/api/users/register",
            json={
                "username": f"v{secrets.token_hex(4)}",
                "email": f"{u.username}@EXAMPLE.com".upper(),
                "password": PASSWORD,
            },
        )
        assert r.status_code == 409 and r.json()["error"] == "email_taken", r.text
        r = _login(c, u.username.upper(), u.password)
        assert r.status_code == 200 and r.json()["user"]["username"] == u.username, r.text
