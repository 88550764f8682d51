"""Sharing a session with other users: invitations, roles, revocation, ownership transfer.

The rules (docs/API.md, "Sharing"): the owner and admins invite (by username or email) as
viewer, editor or admin; an admin manages members below the owner, never the owner and never
another admin's rights up to ``owner``; the invitee accepts or declines; only the owner
transfers the session, to an accepted member, and becomes an admin of it. Every change that
lowers or removes access goes through ``AccessService.changed`` so cached answers and open
sockets follow within the bus's delivery time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coolcoding.db.engine import Database
from coolcoding.db.models import (
    CodeSession,
    PrivateTerminal,
    SessionCollaborator,
    User,
    utcnow,
)
from coolcoding.errors import Conflict, Forbidden, InvalidInput, NotFound
from coolcoding.services.access import Access, AccessService, Role

MEMBER_ROLES = (Role.VIEWER, Role.EDITOR, Role.ADMIN)
# ``sessions.fork_policy`` -> the least role that may fork (a public fork link: its own grant).
FORK_POLICY_ROLES: dict[str, Role] = {
    "members": Role.VIEWER,
    "editors": Role.EDITOR,
    "owner": Role.OWNER,
}
DEFAULT_FORK_POLICY = "editors"


@dataclass(frozen=True)
class Member:
    user_id: int
    username: str
    role: str
    status: str
    invited_by: int | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class SharedSession:
    """A session someone else owns, as its member sees it."""

    session: CodeSession
    role: str
    status: str
    owner_username: str
    invited_by_username: str | None


def member_role(raw: str) -> Role:
    role = Role.parse(raw)
    if role not in MEMBER_ROLES:
        raise InvalidInput(
            "a member is a viewer, an editor or an admin; use transfer to change the owner",
            code="invalid_role",
        )
    return role


class SharingService:
    def __init__(self, db: Database, access: AccessService, *, max_members: int = 100) -> None:
        self.db = db
        self.access = access
        self.max_members = max_members

    async def _find_user(self, who: str) -> User:
        who = who.strip()
        if not who:
            raise InvalidInput("name a user by username or email", code="invalid_invitee")
        async with self.db.session() as s:
            user = await s.scalar(
                select(User).where(
                    or_(
                        func.lower(User.username) == who.lower(),
                        func.lower(User.email) == who.lower(),
                    )
                )
            )
        if user is None:
            raise NotFound(f"no user {who!r}", code="user_not_found")
        return user

    async def invite(self, by: Access, who: str, raw_role: str) -> Member:
        """Invite a user (by username or email); 409 when they are already a member or
        invited. A declined invitation may be sent again."""
        role = member_role(raw_role)
        user = await self._find_user(who)
        if user.id == by.owner_id:
            code = "invite_self" if user.id == by.user_id else "invite_owner"
            raise InvalidInput("the owner of a workspace needs no invitation", code=code)
        if user.id == by.user_id:
            raise InvalidInput("you cannot invite yourself", code="invite_self")
        async with self.db.session() as s:
            existing = await s.scalar(
                select(SessionCollaborator).where(
                    SessionCollaborator.session_id == by.ref.session_id,
                    SessionCollaborator.user_id == user.id,
                )
            )
            if existing is not None and existing.status != "declined":
                raise Conflict(
                    f"{user.username} is already {existing.status} here as {existing.role}",
                    code="already_member",
                    status=existing.status,
                )
            count = await s.scalar(
                select(func.count())
                .select_from(SessionCollaborator)
                .where(
                    SessionCollaborator.session_id == by.ref.session_id,
                    SessionCollaborator.status != "declined",
                )
            )
            if (count or 0) >= self.max_members:
                raise Conflict(
                    f"a workspace has at most {self.max_members} members "
                    "(COOLCODING_SHARE_MAX_COLLABORATORS)",
                    code="too_many_members",
                    limit=self.max_members,
                )
            now = utcnow()
            if existing is None:
                existing = SessionCollaborator(
                    session_id=by.ref.session_id,
                    user_id=user.id,
                    role=role.label,
                    status="invited",
                    invited_by=by.user_id,
                    created_at=now,
                    updated_at=now,
                )
                s.add(existing)
            else:
                existing.role, existing.status = role.label, "invited"
                existing.invited_by, existing.updated_at = by.user_id, now
            try:
                await s.commit()
            except IntegrityError as exc:  # the unique (session, user): a concurrent invitation
                raise Conflict(
                    f"{user.username} was invited concurrently", code="already_member"
                ) from exc
            return Member(user.id, user.username, role.label, "invited", by.user_id, now, now)

    async def members(self, access: Access) -> list[Member]:
        async with self.db.session() as s:
            rows = await s.execute(
                select(SessionCollaborator, User.username)
                .join(User, User.id == SessionCollaborator.user_id)
                .where(SessionCollaborator.session_id == access.ref.session_id)
                .order_by(SessionCollaborator.id)
            )
            return [
                Member(c.user_id, name, c.role, c.status, c.invited_by, c.created_at, c.updated_at)
                for c, name in rows.all()
            ]

    async def _member_row(
        self, s: AsyncSession, session_id: int, user_id: int
    ) -> SessionCollaborator:
        row = await s.scalar(
            select(SessionCollaborator).where(
                SessionCollaborator.session_id == session_id,
                SessionCollaborator.user_id == user_id,
            )
        )
        if row is None:
            raise NotFound("no such member", code="member_not_found")
        return row

    @staticmethod
    def _may_manage(by: Access, target: SessionCollaborator) -> None:
        """An admin manages viewers and editors; only the owner manages admins."""
        if not by.is_owner and Role.parse(target.role) >= Role.ADMIN:
            raise Forbidden(
                "only the owner changes or removes an admin",
                code="forbidden_role",
                required_role="owner",
                role=by.role.label,
            )

    async def set_role(self, by: Access, user_id: int, raw_role: str) -> Member:
        role = member_role(raw_role)
        if role >= Role.ADMIN and not by.is_owner:
            raise Forbidden(
                "only the owner makes someone an admin",
                code="forbidden_role",
                required_role="owner",
                role=by.role.label,
            )
        async with self.db.session() as s:
            row = await self._member_row(s, by.ref.session_id, user_id)
            self._may_manage(by, row)
            row.role, row.updated_at = role.label, utcnow()
            await s.commit()
            name = await s.scalar(select(User.username).where(User.id == user_id))
            member = Member(
                row.user_id, name or "", row.role, row.status, row.invited_by,
                row.created_at, row.updated_at,
            )  # fmt: skip
        await self.access.changed(by.ref.session_uuid, user_id)
        return member

    async def revoke(self, by: Access, user_id: int) -> None:
        """Remove a member or withdraw an invitation; their open sockets are closed."""
        async with self.db.session() as s:
            row = await self._member_row(s, by.ref.session_id, user_id)
            if user_id != by.user_id:  # leaving is always allowed
                self._may_manage(by, row)
            await s.delete(row)
            await s.commit()
        await self.access.changed(by.ref.session_uuid, user_id)

    async def transfer(self, by: Access, user_id: int) -> None:
        """Make an accepted member the owner; the old owner becomes an admin."""
        if not by.is_owner:
            raise Forbidden(
                "only the owner transfers a workspace",
                code="forbidden_role",
                required_role="owner",
                role=by.role.label,
            )
        async with self.db.session() as s, s.begin():
            row = await self._member_row(s, by.ref.session_id, user_id)
            if row.status != "accepted":
                raise Conflict(
                    "ownership goes to a member who accepted their invitation",
                    code="member_not_accepted",
                )
            now = utcnow()
            await s.execute(
                update(CodeSession)
                .where(CodeSession.id == by.ref.session_id)
                .values(user_id=user_id, updated_at=now)
            )
            row.user_id, row.role, row.status = by.user_id, Role.ADMIN.label, "accepted"
            row.invited_by, row.updated_at = user_id, now
        await self.access.changed(by.ref.session_uuid, None)

    # --- the invitee's side --------------------------------------------------------------------

    async def shared_with(self, user_id: int, status: str) -> list[SharedSession]:
        """Sessions others own where ``user_id`` has ``status`` (accepted | invited)."""
        inviter = User.__table__.alias("inviter")
        async with self.db.session() as s:
            rows = await s.execute(
                select(SessionCollaborator, CodeSession, User.username, inviter.c.username)
                .join(CodeSession, CodeSession.id == SessionCollaborator.session_id)
                .join(User, User.id == CodeSession.user_id)
                .outerjoin(inviter, inviter.c.id == SessionCollaborator.invited_by)
                .where(
                    SessionCollaborator.user_id == user_id,
                    SessionCollaborator.status == status,
                )
                .order_by(CodeSession.last_accessed_at.desc(), CodeSession.id.desc())
            )
            return [
                SharedSession(sess, c.role, c.status, owner, inv)
                for c, sess, owner, inv in rows.all()
            ]

    async def answer(self, user_id: int, session_uuid: str, accept: bool) -> SharedSession:
        """Accept or decline an invitation (404 when there is none pending)."""
        from coolcoding.services.access import parse_session_uuid

        uid = parse_session_uuid(session_uuid)
        async with self.db.session() as s:
            row = await s.scalar(
                select(SessionCollaborator)
                .join(CodeSession, CodeSession.id == SessionCollaborator.session_id)
                .where(
                    CodeSession.uuid == uid,
                    SessionCollaborator.user_id == user_id,
                    SessionCollaborator.status == "invited",
                )
            )
            if row is None:
                raise NotFound("no pending invitation to this session", code="invitation_not_found")
            row.status, row.updated_at = ("accepted" if accept else "declined"), utcnow()
            await s.commit()
        await self.access.changed(session_uuid, user_id)
        found = [
            x
            for x in await self.shared_with(user_id, "accepted" if accept else "declined")
            if str(x.session.uuid) == str(uid)
        ]
        return found[0]

    # --- fork policy ------------------------------------------------------------------------

    async def fork_policy(self, access: Access) -> str:
        async with self.db.session() as s:
            policy = await s.scalar(
                select(CodeSession.fork_policy).where(CodeSession.id == access.ref.session_id)
            )
        return policy or DEFAULT_FORK_POLICY

    async def set_fork_policy(self, by: Access, policy: str) -> None:
        if policy not in FORK_POLICY_ROLES:
            raise InvalidInput(
                f"fork_policy is one of {', '.join(FORK_POLICY_ROLES)}", code="invalid_fork_policy"
            )
        async with self.db.session() as s:
            await s.execute(
                update(CodeSession)
                .where(CodeSession.id == by.ref.session_id)
                .values(fork_policy=policy)
            )
            await s.commit()

    # --- private terminals -----------------------------------------------------------------

    async def set_terminal_private(self, by: Access, terminal_id: str, private: bool) -> None:
        """Only the owner lists and attaches to a private terminal; members attached to it are
        disconnected (on every replica)."""
        async with self.db.session() as s:
            row = await s.get(PrivateTerminal, (by.ref.session_id, terminal_id))
            if private and row is None:
                s.add(PrivateTerminal(session_id=by.ref.session_id, terminal_id=terminal_id))
                try:
                    await s.commit()
                except IntegrityError:  # made private concurrently: the same outcome
                    await s.rollback()
            elif not private and row is not None:
                await s.execute(
                    delete(PrivateTerminal).where(
                        PrivateTerminal.session_id == by.ref.session_id,
                        PrivateTerminal.terminal_id == terminal_id,
                    )
                )
                await s.commit()
        if private:
            await self.access.changed(by.ref.session_uuid, terminal_id=terminal_id)
