"""API tokens: long-lived credentials a user creates for programs (the Judge0-compatible API).

A token is ``cct_`` + 32 random bytes (URL-safe base64), shown once at creation; the database
keeps only its SHA-256 (a fast hash is enough for 256 random bits: nothing to brute-force) and
its first characters, to tell tokens apart in a list.

A resolved token is cached ``auth_cache_ttl_s`` (as login tokens are, services/ttlcache.py): a
Judge0 client sends one with every request, and its lookup was an ORM query per judged job. A
revocation or the owner's deletion drops it at once on this replica, and on the others through
the event bus (Redis), else within the TTL.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select, update

from coolcoding.db.engine import Database
from coolcoding.db.models import ApiToken, utcnow
from coolcoding.errors import InvalidInput, NotAuthenticated, NotFound, TooLarge
from coolcoding.services.accounts import FORGET_LOGINS
from coolcoding.services.events import EventBus
from coolcoding.services.ttlcache import TtlCache

PREFIX = "cct_"
FORGET_CACHED = "api_token.forget"  # a replica message: drop this token id from the cache
TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiTokenService:
    def __init__(
        self,
        db: Database,
        max_per_user: int,
        cache_ttl_s: float = 0.0,
        events: EventBus | None = None,
    ) -> None:
        self.db = db
        self.max_per_user = max_per_user
        # token hash -> (token id, user id)
        self._cache: TtlCache[str, tuple[int, int]] = TtlCache(cache_ttl_s)
        self.events = events
        if events is not None:
            events.on_replica_message(self._on_replica_message)

    async def create(self, user_id: int, name: str) -> tuple[ApiToken, str]:
        name = name.strip()
        if not name or len(name) > 64:
            raise InvalidInput("name must be 1-64 characters", code="invalid_token_name")
        raw = PREFIX + secrets.token_urlsafe(32)
        async with self.db.session() as s:
            count = await s.scalar(
                select(func.count()).select_from(ApiToken).where(ApiToken.user_id == user_id)
            )
            if (count or 0) >= self.max_per_user:
                raise TooLarge(f"at most {self.max_per_user} API tokens per user",
                               code="too_many_tokens", maximum=self.max_per_user)  # fmt: skip
            row = ApiToken(user_id=user_id, name=name, prefix=raw[:10], token_hash=token_hash(raw))
            s.add(row)
            await s.commit()
        return row, raw

    async def list_for(self, user_id: int) -> list[ApiToken]:
        async with self.db.session() as s:
            rows = await s.scalars(
                select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)
            )
            return list(rows.all())

    async def delete(self, user_id: int, token_id: int) -> None:
        async with self.db.session() as s:
            res = await s.execute(
                delete(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id)
            )
            await s.commit()
        if getattr(res, "rowcount", 0) != 1:
            raise NotFound("no such API token", code="token_not_found")
        self._cache.forget(lambda _k, v: v[0] == token_id)
        if self.events is not None:
            await self.events.publish_to_replicas("", {"type": FORGET_CACHED, "id": token_id})

    def forget_user(self, user_id: int) -> None:
        """Drop ``user_id``'s cached tokens (the account is being, or was, deleted)."""
        self._cache.forget(lambda _k, v: v[1] == user_id)

    async def _on_replica_message(self, _session: str, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == FORGET_CACHED and isinstance(message.get("id"), int):
            self._cache.forget(lambda _k, v: v[0] == message["id"])
        elif kind == FORGET_LOGINS and isinstance(message.get("user_id"), int):
            self.forget_user(message["user_id"])  # another replica deleted the account

    async def authenticate(self, raw: str | None) -> int:
        """The user id of ``raw``; 401 for a missing, unknown or revoked token."""
        if not raw or not raw.startswith(PREFIX) or len(raw) > 100:
            raise NotAuthenticated("a valid API token is required (X-Auth-Token)")
        digest = token_hash(raw)
        return (await self._cache.get(digest, lambda: self._lookup(digest)))[1]

    async def _lookup(self, digest: str) -> tuple[int, int]:
        """``(token id, user id)`` of the token with this hash (401 when there is none); its
        ``last_used_at`` is written at most every ``TOUCH_EVERY``."""
        async with self.db.session() as s:
            row = await s.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
            if row is None:
                raise NotAuthenticated("a valid API token is required (X-Auth-Token)")
            now = utcnow()
            if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY:
                await s.execute(
                    update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now)
                )
                await s.commit()
            return row.id, row.user_id
