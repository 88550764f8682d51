"""The in-process cache of login tokens (auth_cache_ttl_s, services/ttlcache.py) must not let a
logged-out or deleted user's token keep working on the replica that logged it out, even when a
lookup of that token was in flight during the logout; and concurrent lookups share one query."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from coolcoding.db.engine import Database
from coolcoding.db.migrate import upgrade
from coolcoding.db.models import User
from coolcoding.errors import NotAuthenticated
from coolcoding.services.accounts import AccountService, Principal
from coolcoding.services.events import EventBus
from coolcoding.services.ratelimit import RateLimiter
from tests.conftest import make_database, make_settings
from tests.serve_helpers import free_port


class GatedAccounts(AccountService):
    """The real service on the real database; a lookup that has read its row waits at a gate
    (the moment a request's token check is between its query and its caching)."""

    gate: asyncio.Event | None = None
    queries = 0

    async def _resolve_token(self, token_hash: str) -> Principal:
        self.queries += 1
        principal = await super()._resolve_token(token_hash)
        if self.gate is not None:
            await self.gate.wait()
        return principal


def _with_a_login(
    backend: str,
    tmp_path: Path,
    username: str,
    body: Callable[[GatedAccounts, User, str], Awaitable[None]],
) -> None:
    """Runs ``body`` with the gated service on a fresh database, one registered user and one of
    their login tokens."""
    database = make_database(backend, tmp_path)
    settings = make_settings(tmp_path, database.url, auth_cache_ttl_s=30.0)

    async def main() -> None:
        db = Database(settings)
        try:
            await upgrade(db.engine)
            accounts = GatedAccounts(db, settings, RateLimiter(1000, 60))
            user = await accounts.register(username, f"{username}@example.com", "long-enough-pass")
            token = await accounts.create_login(user, None, None)
            await body(accounts, user, token)
        finally:
            await db.dispose()

    try:
        asyncio.run(main())
    finally:
        database.drop()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("scenario", ["logout", "delete_user"])
def test_a_lookup_in_flight_does_not_revive_a_revoked_token(
    backend: str, scenario: str, tmp_path: Path
) -> None:
    async def body(accounts: GatedAccounts, user: User, token: str) -> None:
        login_id = (await accounts.resolve_token(token)).login_id
        accounts._forget_tokens(lambda _p: True)
        accounts.gate = asyncio.Event()
        in_flight = asyncio.create_task(accounts.resolve_token(token))
        while accounts.queries < 2:  # the lookup has read the row
            await asyncio.sleep(0.01)
        if scenario == "logout":
            await accounts.revoke(login_id)
        else:
            await accounts.delete_user(user.id)
        # A request after the logout must not join the lookup from before it.
        after = asyncio.create_task(accounts.resolve_token(token))
        await asyncio.sleep(0.05)
        accounts.gate.set()
        await in_flight  # began before the logout: it may still answer
        with pytest.raises(NotAuthenticated):
            await after
        with pytest.raises(NotAuthenticated):
            await accounts.resolve_token(token)

    _with_a_login(backend, tmp_path, "victim", body)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_lookups_of_one_token_share_one_query(backend: str, tmp_path: Path) -> None:
    async def body(accounts: GatedAccounts, user: User, token: str) -> None:
        accounts.gate = asyncio.Event()
        lookups = [asyncio.create_task(accounts.resolve_token(token)) for _ in range(50)]
        while accounts.queries < 1:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        accounts.gate.set()
        principals = await asyncio.gather(*lookups)
        assert {p.user_id for p in principals} == {user.id}
        assert accounts.queries == 1
        # A wrong token fails for every caller and is not cached as anything.
        with pytest.raises(NotAuthenticated):
            await accounts.resolve_token("not-a-token")

    _with_a_login(backend, tmp_path, "many", body)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A Redis of the test's own (the replicas' event bus)."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is needed (scripts/setup.sh installs it)")
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", tmp_path],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("scenario", ["logout", "delete_user"])
def test_a_logout_on_one_replica_reaches_the_other_replicas_cache(
    backend: str, scenario: str, tmp_path: Path, redis_url: str
) -> None:
    """Two replicas (own database engine and event bus each, one database, one Redis): a token
    cached by replica B stops working there as soon as replica A logs it out or deletes the
    account, not ``auth_cache_ttl_s`` (30 s here) later."""
    database = make_database(backend, tmp_path)
    settings = make_settings(tmp_path, database.url, auth_cache_ttl_s=30.0, redis_url=redis_url)

    async def main() -> None:
        dbs = [Database(settings), Database(settings)]
        buses = [EventBus(redis_url), EventBus(redis_url)]
        try:
            await upgrade(dbs[0].engine)
            for bus in buses:
                await bus.start()
            a, b = (
                AccountService(db, settings, RateLimiter(1000, 60), events=bus)
                for db, bus in zip(dbs, buses, strict=True)
            )
            user = await a.register("roamer", "roamer@example.com", "long-enough-pass")
            token = await a.create_login(user, None, None)
            other = await a.create_login(user, None, None)
            login_id = (await b.resolve_token(token)).login_id  # cached on B
            await b.resolve_token(other)
            # A forged or foreign message on the bus changes nothing.
            await buses[0].publish_to_replicas("", {"type": "auth.forget", "login_id": "1"})
            await buses[0].publish_to_replicas("", {"type": "auth.other", "user_id": user.id})
            await asyncio.sleep(0.2)
            assert (await b.resolve_token(token)).user_id == user.id
            if scenario == "logout":
                await a.revoke(login_id)
            else:
                await a.delete_user(user.id)
            deadline = time.monotonic() + 10  # pub/sub delivery, far below the 30 s cache
            while True:
                try:
                    await b.resolve_token(token)
                except NotAuthenticated:
                    break
                assert time.monotonic() < deadline, "replica B still accepts the revoked token"
                await asyncio.sleep(0.05)
            if scenario == "logout":  # the user's other login is untouched
                assert (await b.resolve_token(other)).user_id == user.id
            else:
                with pytest.raises(NotAuthenticated):
                    await b.resolve_token(other)
        finally:
            for bus in buses:
                await bus.stop()
            for db in dbs:
                await db.dispose()

    try:
        asyncio.run(main())
    finally:
        database.drop()
