"""Accounts and logins: argon2id password hashes, hashed bearer/cookie tokens, login throttling.

Login throttling stops guessing without locking the owner out:

- per client IP: ``login_rate_limit`` failures per ``login_rate_window_s``, then 429;
- per account: after ``login_account_free_failures`` failures, each attempt must wait
  ``login_account_delay_s`` doubled per further failure (capped at ``login_account_delay_max_s``)
  since the last failure, else 429 with Retry-After (the password is not even checked);
- a known device passes the account delay: every successful login sets a device cookie, an HMAC
  of (user id, nonce) keyed by the account's password hash (so no table, valid on every replica,
  and void when the password changes). A correct password from a browser with that cookie logs in
  while the account is slowed down for everyone else. Its IP is still limited.

Usernames and emails are case-insensitive ("abc" and "ABC" are one account; the case of the
registration is kept for display): unique indexes on lower(), and every lookup uses lower().
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coolcoding.db.engine import Database
from coolcoding.db.models import LoginSession, User, as_utc, utcnow
from coolcoding.errors import Conflict, InvalidInput, NotAuthenticated, NotFound, RateLimited
from coolcoding.services.blobstore import retrying
from coolcoding.services.events import EventBus
from coolcoding.services.ratelimit import RateLimiter
from coolcoding.services.ttlcache import TtlCache
from coolcoding.settings import Settings

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,32}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,185}\.[^@\s]{1,63}$")
# A last-used timestamp written on every request would turn reads into writes.
_TOUCH_EVERY = timedelta(minutes=1)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """The authenticated user of a request and the login it came with."""

    user_id: int
    username: str
    login_id: int


# A replica message (services/events.py): drop these logins' cached tokens on every replica.
FORGET_LOGINS = "auth.forget"


class AccountService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        limiter: RateLimiter,
        redis: Any = None,
        events: EventBus | None = None,
    ) -> None:
        self.db = db
        # With Redis, a logout or an account deletion reaches the other replicas' token caches
        # at once (not after auth_cache_ttl_s).
        self.events = events
        if events is not None:
            events.on_replica_message(self._on_replica_message)
        self.settings = settings
        self.limiter = limiter  # failed logins per IP
        self.account_failures = RateLimiter(
            settings.login_account_free_failures + 32,
            settings.login_account_window_s,
            redis,
            prefix="cc:login:acct",
        )
        self.registrations = RateLimiter(
            settings.register_rate_limit, settings.register_rate_window_s, redis, prefix="cc:reg"
        )
        # argon2id with OWASP's minimum (19 MiB, t=2): ~20 ms a hash on this machine.
        self.hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
        # Verified against when the account does not exist, so timing does not reveal usernames.
        self._dummy_hash = self.hasher.hash(secrets.token_hex(16))
        # token hash -> principal, for auth_cache_ttl_s (single flight; a logout or a user's
        # deletion on this replica drops it at once, services/ttlcache.py)
        self._token_cache: TtlCache[str, Principal] = TtlCache(settings.auth_cache_ttl_s)
        # Run in the deletion's transaction before the user's rows go: releases what the
        # database's cascades cannot (shared content's reference counts, services/snapshots.py).
        self.before_delete: list[Callable[[AsyncSession, int], Awaitable[None]]] = []
        # Called with the user id before and after an account's deletion (other caches of
        # credentials: API tokens).
        self.on_deleted: list[Callable[[int], None]] = []

    def _validate(self, username: str, email: str, password: str) -> None:
        if not USERNAME_RE.match(username):
            raise InvalidInput(
                "username must be 3-32 characters: letters, digits, '_', '.', '-'",
                code="invalid_username",
            )
        if not EMAIL_RE.match(email):
            raise InvalidInput("email address is not valid", code="invalid_email")
        if len(password) < self.settings.password_min_length:
            raise InvalidInput(
                f"password must be at least {self.settings.password_min_length} characters",
                code="weak_password",
            )
        if len(password) > 1024:
            raise InvalidInput("password is longer than 1024 characters", code="invalid_password")

    async def register(
        self, username: str, email: str, password: str, ip: str | None = None
    ) -> User:
        """Create an account; ``ip`` (a request's client) is limited to ``register_rate_limit``
        attempts per ``register_rate_window_s``."""
        if ip is not None:
            wait = await self.registrations.blocked(f"ip:{ip}")
            if wait:
                raise RateLimited(
                    "too many registrations from this address "
                    f"(register_rate_limit={self.settings.register_rate_limit} per "
                    f"{self.settings.register_rate_window_s} s); try again later",
                    retry_after=round(wait + 0.5),
                )
            await self.registrations.hit(f"ip:{ip}")
        email = email.strip().lower()
        self._validate(username, email, password)
        pw_hash = await asyncio.to_thread(self.hasher.hash, password)
        async with self.db.session() as s:
            taken = (
                await s.execute(
                    select(User.username, User.email).where(
                        or_(
                            func.lower(User.username) == username.lower(),
                            func.lower(User.email) == email,
                        )
                    )
                )
            ).first()
            if taken is not None:
                what = "username" if taken[0].lower() == username.lower() else "email"
                raise Conflict(f"this {what} is already registered", code=f"{what}_taken")
            user = User(username=username, email=email, password_hash=pw_hash)
            s.add(user)
            try:
                await s.commit()
            except IntegrityError as exc:
                raise Conflict(
                    "username or email is already registered", code="username_taken"
                ) from exc
            return user

    async def create_user(self, username: str, email: str, password: str) -> User:
        return await self.register(username, email, password)

    async def list_users(self) -> list[User]:
        async with self.db.session() as s:
            return list((await s.scalars(select(User).order_by(User.id))).all())

    async def authenticate(
        self, login: str, password: str, ip: str | None, device: str | None = None
    ) -> User:
        """Check a password, throttled per IP and per account (module docstring); ``device`` is
        the device cookie, if the client sent one."""
        login = login.strip().lower()
        ip_key = f"login:ip:{ip}" if ip else None
        acct_key = f"login:acct:{login}"
        if ip_key is not None:
            wait = await self.limiter.blocked(ip_key)
            if wait:
                raise RateLimited(
                    "too many failed logins from this address; try again later",
                    retry_after=round(wait + 0.5),
                )
        async with self.db.session() as s:
            user = await s.scalar(
                select(User).where(
                    or_(func.lower(User.username) == login, func.lower(User.email) == login)
                )
            )
        if user is None or not self.known_device(user, device):
            wait = await self._account_wait(acct_key)
            if wait:
                raise RateLimited(
                    "too many failed logins for this account; try again later",
                    retry_after=max(1, round(wait + 0.5)),
                )
        ok = False
        candidate = user.password_hash if user is not None else self._dummy_hash
        try:
            ok = await asyncio.to_thread(self.hasher.verify, candidate, password)
        except (VerificationError, InvalidHashError):
            ok = False
        if user is None or not ok:
            if ip_key is not None:
                await self.limiter.hit(ip_key)
            await self.account_failures.hit(acct_key)
            raise NotAuthenticated("wrong username or password", code="invalid_credentials")
        await self.account_failures.reset(acct_key)
        return user

    async def _account_wait(self, key: str) -> float:
        """Seconds this account must still wait: 0 for the first free failures, then
        ``login_account_delay_s`` * 2^(extra failures), capped, counted from the last failure."""
        st = self.settings
        failures = await self.account_failures.count(key)
        if failures < st.login_account_free_failures:
            return 0.0
        last = await self.account_failures.newest(key)
        if last is None:
            return 0.0
        extra = failures - st.login_account_free_failures
        delay = min(st.login_account_delay_s * 2 ** min(extra, 32), st.login_account_delay_max_s)
        return max(0.0, float(last + delay - time.time()))

    def device_token(self, user: User) -> str:
        """A new device cookie value for ``user`` (see the module docstring)."""
        nonce = secrets.token_urlsafe(12)
        return f"{user.id}.{nonce}.{self._device_mac(user, nonce)}"

    def known_device(self, user: User, device: str | None) -> bool:
        if not device or device.count(".") != 2:
            return False
        uid, nonce, mac = device.split(".")
        return uid == str(user.id) and hmac.compare_digest(mac, self._device_mac(user, nonce))

    @staticmethod
    def _device_mac(user: User, nonce: str) -> str:
        key = hashlib.sha256(b"coolcoding-device:" + user.password_hash.encode()).digest()
        return hmac.new(key, f"{user.id}.{nonce}".encode(), hashlib.sha256).hexdigest()[:32]

    async def create_login(self, user: User, user_agent: str | None, ip: str | None) -> str:
        token = secrets.token_urlsafe(32)
        async with self.db.session() as s:
            s.add(
                LoginSession(
                    user_id=user.id,
                    token_hash=hash_token(token),
                    expires_at=utcnow() + timedelta(hours=self.settings.login_ttl_hours),
                    user_agent=(user_agent or "")[:512] or None,
                    ip=ip,
                )
            )
            await s.commit()
        return token

    async def resolve_token(self, token: str) -> Principal:
        token_hash = hash_token(token)
        return await self._token_cache.get(token_hash, lambda: self._resolve_token(token_hash))

    async def _resolve_token(self, token_hash: str) -> Principal:
        now = utcnow()
        async with self.db.session() as s:
            row = (
                await s.execute(
                    select(
                        LoginSession.id,
                        LoginSession.expires_at,
                        LoginSession.last_used_at,
                        User.id,
                        User.username,
                    )
                    .join(User, User.id == LoginSession.user_id)
                    .where(LoginSession.token_hash == token_hash)
                )
            ).first()
            if row is None:
                raise NotAuthenticated("not logged in (unknown or revoked token)")
            login_id, expires_at, last_used, user_id, username = row
            if as_utc(expires_at) <= now:
                raise NotAuthenticated("login expired; log in again", code="login_expired")
            if now - as_utc(last_used) > _TOUCH_EVERY:
                await s.execute(
                    update(LoginSession).where(LoginSession.id == login_id).values(last_used_at=now)
                )
                await s.commit()
        return Principal(user_id=user_id, username=username, login_id=login_id)

    async def revoke(self, login_id: int) -> None:
        self._forget_tokens(lambda p: p.login_id == login_id)
        async with self.db.session() as s:
            await s.execute(delete(LoginSession).where(LoginSession.id == login_id))
            await s.commit()
        # Again once committed: a lookup that read the row before the delete stores nothing.
        self._forget_tokens(lambda p: p.login_id == login_id)
        await self._tell_replicas({"login_id": login_id})

    def _forget_tokens(self, match: Callable[[Principal], bool]) -> None:
        self._token_cache.forget(lambda _k, p: match(p))

    async def _tell_replicas(self, which: dict[str, int]) -> None:
        """After the commit: the other replicas drop the cached tokens (at most once, Redis
        pub/sub: a replica that misses it still stops within ``auth_cache_ttl_s``)."""
        if self.events is not None:
            await self.events.publish_to_replicas("", {"type": FORGET_LOGINS, **which})

    async def _on_replica_message(self, _session: str, message: dict[str, Any]) -> None:
        if message.get("type") != FORGET_LOGINS:
            return
        login_id, user_id = message.get("login_id"), message.get("user_id")
        if isinstance(login_id, int):
            self._forget_tokens(lambda p: p.login_id == login_id)
        if isinstance(user_id, int):
            self._forget_tokens(lambda p: p.user_id == user_id)

    async def get_user(self, user_id: int) -> User:
        async with self.db.session() as s:
            user = await s.get(User, user_id)
        if user is None:
            raise NotFound("no such user", code="user_not_found")
        return user

    async def delete_user(self, user_id: int) -> None:
        """Delete the account; the database cascades to its logins, sessions, files, commands
        and executions. Callers stop the user's sandboxes first (SessionService.delete)."""
        self._forget_tokens(lambda p: p.user_id == user_id)
        for forget in self.on_deleted:
            forget(user_id)

        async def run() -> None:
            async with self.db.session() as s, s.begin():
                for hook in self.before_delete:
                    await hook(s, user_id)
                await s.execute(delete(User).where(User.id == user_id))

        await retrying(run)
        self._forget_tokens(lambda p: p.user_id == user_id)
        for forget in self.on_deleted:
            forget(user_id)
        await self._tell_replicas({"user_id": user_id})
