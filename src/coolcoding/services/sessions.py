"""Coding sessions (workspaces): a user sees and touches only their own."""

from __future__ import annotations

import asyncio
import time
import uuid as uuid_mod
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coolcoding.db.engine import Database
from coolcoding.db.models import CodeSession, utcnow
from coolcoding.errors import Conflict, InvalidInput, NotFound
from coolcoding.services.workspace import WorkspaceRef

SessionHook = Callable[[CodeSession], Awaitable[None]]


def parse_uuid(raw: str) -> uuid_mod.UUID:
    try:
        return uuid_mod.UUID(str(raw))
    except ValueError as exc:
        raise NotFound("no such session", code="session_not_found") from exc


def ref_of(session: CodeSession) -> WorkspaceRef:
    return WorkspaceRef(session_id=session.id, session_uuid=str(session.uuid))


async def _found(s: AsyncSession, sess: CodeSession | None, *, touch: bool) -> CodeSession:
    """``sess`` as read in ``s`` (404 when there is none), its last access stamped if ``touch``."""
    if sess is None:
        raise NotFound("no such session", code="session_not_found")
    if touch:
        sess.last_accessed_at = utcnow()
        await s.commit()
    return sess


_S = CodeSession.__table__
OWNED_ID_STMT = select(_S.c.id).where(
    _S.c.uuid == bindparam("uuid"), _S.c.user_id == bindparam("user_id")
)


class SessionService:
    def __init__(
        self,
        db: Database,
        languages: Callable[[], set[str]] | None = None,
        *,
        owner_cache_ttl_s: float = 0.0,
        max_per_user: int = 0,
    ) -> None:
        self.db = db
        self.max_per_user = max_per_user  # sessions one user may own (0 = no cap)
        self._create_locks: dict[int, asyncio.Lock] = {}
        # (user id, uuid) -> (workspace, when): the ownership check of every workspace request.
        # A session never changes owner; a delete here drops its entry, a delete on another
        # replica is seen within the TTL (the same bound as the token cache's).
        self._owner_ttl = owner_cache_ttl_s
        self._owner_cache: dict[tuple[int, uuid_mod.UUID], tuple[WorkspaceRef, float]] = {}
        self._languages = languages
        # Called before a session is deleted (e.g. to stop its sandbox).
        self.before_delete: list[SessionHook] = []

    def set_languages(self, languages: Callable[[], set[str]]) -> None:
        self._languages = languages

    def _check_language(self, language: str) -> None:
        known = self._languages() if self._languages else None
        if known and language not in known:
            raise InvalidInput(
                f"unknown language {language!r}; known: {', '.join(sorted(known))}",
                code="unknown_language",
            )

    async def list_for(self, user_id: int) -> list[CodeSession]:
        async with self.db.session() as s:
            rows = await s.scalars(
                select(CodeSession)
                .where(CodeSession.user_id == user_id)
                .order_by(CodeSession.last_accessed_at.desc(), CodeSession.id.desc())
            )
            return list(rows.all())

    async def create(
        self,
        user_id: int,
        name: str,
        language: str,
        network_enabled: bool,
        uuid: uuid_mod.UUID | None = None,
    ) -> CodeSession:
        """A new session; ``uuid``: one the runtime reserved a pre-started sandbox under."""
        self._check_language(language)
        # The count and the insert under one lock per user: a burst of creates from one user
        # on this replica cannot overshoot the cap (across replicas it can, by their number).
        lock = self._create_locks.setdefault(user_id, asyncio.Lock())
        async with lock, self.db.session() as s:
            if self.max_per_user > 0:
                owned = await s.scalar(
                    select(func.count())
                    .select_from(CodeSession)
                    .where(CodeSession.user_id == user_id)
                )
                if (owned or 0) >= self.max_per_user:
                    raise Conflict(
                        f"you have {owned} sessions, the most allowed "
                        "(COOLCODING_MAX_SESSIONS_PER_USER); delete one first",
                        code="too_many_sessions",
                        limit=self.max_per_user,
                        setting="max_sessions_per_user",
                    )
            sess = CodeSession(
                user_id=user_id, name=name, language=language, network_enabled=network_enabled
            )
            if uuid is not None:
                sess.uuid = uuid
            s.add(sess)
            await s.commit()
        return sess

    async def get_owned(self, user_id: int, raw_uuid: str, *, touch: bool = False) -> CodeSession:
        """The session with this uuid if it belongs to ``user_id``; 404 otherwise (never 403:
        another user's session must be indistinguishable from a missing one)."""
        uid = parse_uuid(raw_uuid)
        async with self.db.session() as s:
            sess = await s.scalar(
                select(CodeSession).where(CodeSession.uuid == uid, CodeSession.user_id == user_id)
            )
            return await _found(s, sess, touch=touch)

    async def owned_ref(self, user_id: int, raw_uuid: str) -> WorkspaceRef:
        """The workspace of the session with this uuid if ``user_id`` owns it; 404 otherwise.
        The hot path of every workspace request: one Core query on a bare connection, cached."""
        uid = parse_uuid(raw_uuid)
        key = (user_id, uid)
        cached = self._owner_cache.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[1] < self._owner_ttl:
            return cached[0]
        async with self.db.read() as conn:
            sid = (await conn.execute(OWNED_ID_STMT, {"uuid": uid, "user_id": user_id})).scalar()
        if sid is None:
            raise NotFound("no such session", code="session_not_found")
        ref = WorkspaceRef(session_id=int(sid), session_uuid=str(uid))
        if self._owner_ttl > 0:
            if len(self._owner_cache) > 10_000:
                self._owner_cache.clear()
            self._owner_cache[key] = (ref, now)
        return ref

    async def load(self, session_id: int, *, touch: bool = False) -> CodeSession:
        """The session by its id (the caller checked access: ``AccessService.require``)."""
        async with self.db.session() as s:
            sess = await s.get(CodeSession, session_id)
            return await _found(s, sess, touch=touch)

    async def get_by_uuid(self, raw_uuid: str) -> CodeSession | None:
        async with self.db.session() as s:
            return await s.scalar(
                select(CodeSession).where(CodeSession.uuid == parse_uuid(raw_uuid))
            )

    async def update(self, session_id: int, changes: dict[str, Any]) -> CodeSession:
        """Change the session (the caller checked access: ``AccessService.require``)."""
        if "language" in changes and changes["language"] is not None:
            self._check_language(changes["language"])
        sess = await self.load(session_id)
        async with self.db.session() as s:
            values = {k: v for k, v in changes.items() if v is not None}
            if values:
                await s.execute(
                    update(CodeSession)
                    .where(CodeSession.id == sess.id)
                    .values(**values, updated_at=utcnow())
                )
                await s.commit()
            fresh = await s.get(CodeSession, sess.id)
            assert fresh is not None
            return fresh

    async def set_sandbox_status(
        self,
        session_id: int,
        status: str,
        error: str | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        async with self.db.session() as s:
            values: dict[str, Any] = {"sandbox_status": status, "sandbox_error": error}
            if state is not None:
                values["sandbox_state"] = state
            await s.execute(
                update(CodeSession).where(CodeSession.id == session_id).values(**values)
            )
            await s.commit()

    async def delete(self, user_id: int, raw_uuid: str) -> None:
        sess = await self.get_owned(user_id, raw_uuid)
        self._owner_cache.pop((user_id, sess.uuid), None)
        for hook in self.before_delete:
            await hook(sess)
        async with self.db.session() as s:
            obj = await s.get(CodeSession, sess.id)
            if obj is not None:
                await s.delete(obj)
                await s.commit()
