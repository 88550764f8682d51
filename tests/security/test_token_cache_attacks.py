"""The in-process cache of login tokens (auth_cache_ttl_s, services/ttlcache.py) must not let a
logged-out or deleted user's token keep working on the replica that logged it out, even when a
lookup of that token was in flight during the logout; and concurrent lookups share one query."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from coolcoding.db.engine import Database
from coolcoding.db.migrate import upgrade
from coolcoding.db.models import User
from coolcoding.errors import NotAuthenticated
from coolcoding.services.accounts import AccountService, Principal
from coolcoding.services.ratelimit import RateLimiter
from tests.conftest import make_database, make_settings


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
