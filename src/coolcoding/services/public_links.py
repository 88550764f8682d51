"""Public links: a random token (``secrets.token_urlsafe(32)``, 256 bits) that opens a session's
files and last run read-only without an account, or lets a logged-in user fork it.

Only the token's SHA-256 is stored. An unknown token answers 404; an expired or revoked one 410
(the link existed: its owner may want to say so). A link never reaches a terminal, a sandbox or
a write: the public routes (api/routes/public.py) only read through this service.
"""

from __future__ import annotations

import hashlib
import secrets
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update

from coolcoding.db.engine import Database
from coolcoding.db.models import CodeSession, Execution, PublicLink, utcnow
from coolcoding.errors import Conflict, Gone, InvalidInput, NotFound
from coolcoding.services.access import Access
from coolcoding.services.workspace import WorkspaceRef

PERMISSIONS = ("read", "fork")
# The session a fork link lets the current request fork (set by the public fork route for the
# duration of the fork; read by ``link_fork_grant``, a fork grant of SnapshotService).
FORK_GRANTED: ContextVar[int | None] = ContextVar("link_fork_granted", default=None)


async def link_fork_grant(user_id: int, session: CodeSession) -> bool:
    return FORK_GRANTED.get() == session.id


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class LinkInfo:
    id: int
    permission: str
    expires_at: datetime | None
    revoked_at: datetime | None
    view_count: int
    created_by: int | None
    created_at: datetime

    @classmethod
    def of(cls, row: PublicLink) -> LinkInfo:
        return cls(
            row.id, row.permission, row.expires_at, row.revoked_at, row.view_count,
            row.created_by, row.created_at,
        )  # fmt: skip


@dataclass(frozen=True)
class OpenedLink:
    """What a valid token opens."""

    link_id: int
    permission: str
    session: CodeSession

    @property
    def ref(self) -> WorkspaceRef:
        return WorkspaceRef(self.session.id, str(self.session.uuid))


class PublicLinkService:
    def __init__(self, db: Database, *, max_per_session: int = 20) -> None:
        self.db = db
        self.max_per_session = max_per_session

    async def create(
        self, by: Access, permission: str, expires_at: datetime | None
    ) -> tuple[str, LinkInfo]:
        """A new link; the token is returned once, only its hash is kept."""
        if permission not in PERMISSIONS:
            raise InvalidInput("permission is read or fork", code="invalid_permission")
        if expires_at is not None and expires_at <= utcnow():
            raise InvalidInput("expires_at is in the past", code="invalid_expiry")
        token = secrets.token_urlsafe(32)
        async with self.db.session() as s:
            live = await s.scalar(
                select(func.count())
                .select_from(PublicLink)
                .where(PublicLink.session_id == by.ref.session_id, PublicLink.revoked_at.is_(None))
            )
            if (live or 0) >= self.max_per_session:
                raise Conflict(
                    f"a workspace has at most {self.max_per_session} public links "
                    "(COOLCODING_PUBLIC_LINK_MAX_PER_SESSION); revoke one first",
                    code="too_many_links",
                    limit=self.max_per_session,
                )
            row = PublicLink(
                session_id=by.ref.session_id,
                token_hash=token_hash(token),
                permission=permission,
                expires_at=expires_at,
                created_by=by.user_id,
                created_at=utcnow(),
                view_count=0,
            )
            s.add(row)
            await s.commit()
            return token, LinkInfo.of(row)

    async def list(self, access: Access) -> list[LinkInfo]:
        async with self.db.session() as s:
            rows = await s.scalars(
                select(PublicLink)
                .where(PublicLink.session_id == access.ref.session_id)
                .order_by(PublicLink.id.desc())
            )
            return [LinkInfo.of(r) for r in rows.all()]

    async def revoke(self, access: Access, link_id: int) -> None:
        async with self.db.session() as s:
            row = await s.scalar(
                select(PublicLink).where(
                    PublicLink.id == link_id, PublicLink.session_id == access.ref.session_id
                )
            )
            if row is None:
                raise NotFound("no such link", code="link_not_found")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                await s.commit()

    async def open(self, token: str, *, count_view: bool = False) -> OpenedLink:
        """The session a token opens: 404 unknown, 410 expired or revoked. ``count_view``: this
        is an open of the link's page (file fetches are not counted)."""
        if not token or len(token) > 128:
            raise NotFound("no such link", code="link_not_found")
        digest = token_hash(token)
        async with self.db.session() as s:
            row = await s.scalar(select(PublicLink).where(PublicLink.token_hash == digest))
            if row is None:
                raise NotFound("no such link", code="link_not_found")
            if row.revoked_at is not None:
                raise Gone("this link was revoked", code="link_revoked")
            if row.expires_at is not None and row.expires_at <= utcnow():
                raise Gone("this link has expired", code="link_expired")
            sess = await s.get(CodeSession, row.session_id)
            if sess is None:  # pragma: no cover - the cascade deletes the link with it
                raise NotFound("no such link", code="link_not_found")
            if count_view:
                await s.execute(
                    update(PublicLink)
                    .where(PublicLink.id == row.id)
                    .values(view_count=PublicLink.view_count + 1)
                )
                await s.commit()
            return OpenedLink(row.id, row.permission, sess)

    async def last_run(self, session_id: int) -> Execution | None:
        """The session's latest finished run (its output is shown on the link's page)."""
        async with self.db.session() as s:
            return await s.scalar(
                select(Execution)
                .where(Execution.session_id == session_id, Execution.completed_at.is_not(None))
                .order_by(Execution.id.desc())
                .limit(1)
            )
