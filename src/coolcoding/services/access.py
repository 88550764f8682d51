"""Who may do what in a session: the one access check of every workspace route and WebSocket.

``AccessService.require(user_id, session_uuid, need)`` answers the caller's ``Access`` (the
workspace and the caller's role) or raises:
- ``NotFound`` (404 ``session_not_found``) when the session is missing or the caller is not an
  accepted member: another user's session stays indistinguishable from a missing one;
- ``Forbidden`` (403 ``forbidden_role``, with ``required_role`` and ``role``) when the caller is a
  member whose role is too low.

Roles are ordered viewer < editor < admin < owner; the owner (``sessions.user_id``) is implicit.
The answer is one Core query, cached per replica for ``share_cache_ttl_s``; a role change or a
revocation drops the cached entries here and, over the event bus, on every other replica, and
closes the user's open sockets of that session everywhere (``register_socket``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import uuid as uuid_mod
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, bindparam, select

from coolcoding.db.engine import Database
from coolcoding.db.models import CodeSession, PrivateTerminal, SessionCollaborator
from coolcoding.errors import Forbidden, InvalidInput, NotFound
from coolcoding.services.events import EventBus
from coolcoding.services.ttlcache import TtlCache
from coolcoding.services.workspace import WorkspaceRef

log = logging.getLogger(__name__)


class Role(enum.IntEnum):
    """A member's role; a higher value includes every right of the lower ones."""

    VIEWER = 1
    EDITOR = 2
    ADMIN = 3
    OWNER = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, raw: str) -> Role:
        try:
            return cls[raw.upper()]
        except KeyError as exc:
            raise InvalidInput(
                f"unknown role {raw!r}; one of viewer, editor, admin", code="invalid_role"
            ) from exc


@dataclass(frozen=True)
class Access:
    """The caller's standing in one session."""

    ref: WorkspaceRef
    role: Role
    user_id: int
    owner_id: int

    @property
    def is_owner(self) -> bool:
        return self.role is Role.OWNER

    def can(self, need: Role) -> bool:
        return self.role >= need


CloseSocket = Callable[[str], Awaitable[None]]


@dataclass(eq=False)
class SocketEntry:
    """One open WebSocket of ``user_id`` in a session (``terminal_id``: a terminal's)."""

    user_id: int
    close: CloseSocket
    terminal_id: str | None = None
    closing: bool = field(default=False)


_S = CodeSession.__table__
_C = SessionCollaborator.__table__
ROLE_STMT = (
    select(_S.c.id, _S.c.user_id, _C.c.role)
    .select_from(
        _S.outerjoin(
            _C,
            and_(
                _C.c.session_id == _S.c.id,
                _C.c.user_id == bindparam("user_id"),
                _C.c.status == "accepted",
            ),
        )
    )
    .where(_S.c.uuid == bindparam("uuid"))
)
PRIVATE_STMT = select(PrivateTerminal.__table__.c.terminal_id).where(
    PrivateTerminal.__table__.c.session_id == bindparam("sid")
)
_MSG = "access"


def parse_session_uuid(raw: str) -> uuid_mod.UUID:
    try:
        return uuid_mod.UUID(str(raw))
    except ValueError as exc:
        raise NotFound("no such session", code="session_not_found") from exc


class AccessService:
    def __init__(self, db: Database, events: EventBus, *, cache_ttl_s: float = 2.0) -> None:
        self.db = db
        self.events = events
        # (user id, session uuid) -> the role; single flight, and a change drops it at once
        # (loads in flight included, services/ttlcache.py)
        self._cache: TtlCache[tuple[int, uuid_mod.UUID], Access] = TtlCache(cache_ttl_s)
        self._sockets: dict[str, set[SocketEntry]] = {}
        events.on_replica_message(self._on_replica_message)

    # --- the check ---------------------------------------------------------------------------

    async def role_of(self, user_id: int, raw_uuid: str) -> Access:
        """The caller's access to the session; 404 when none (missing, or not a member)."""
        uid = parse_session_uuid(raw_uuid)
        return await self._cache.get((user_id, uid), lambda: self._load_role(user_id, uid))

    async def _load_role(self, user_id: int, uid: uuid_mod.UUID) -> Access:
        async with self.db.read() as conn:
            row = (await conn.execute(ROLE_STMT, {"uuid": uid, "user_id": user_id})).first()
        if row is None:
            raise NotFound("no such session", code="session_not_found")
        sid, owner_id, member_role = int(row[0]), int(row[1]), row[2]
        if owner_id == user_id:
            role = Role.OWNER
        elif member_role is not None:
            role = Role.parse(str(member_role))
        else:
            raise NotFound("no such session", code="session_not_found")
        return Access(WorkspaceRef(sid, str(uid)), role, user_id, owner_id)

    async def require(self, user_id: int, raw_uuid: str, need: Role) -> Access:
        """``role_of``, and 403 ``forbidden_role`` when the member's role is below ``need``."""
        access = await self.role_of(user_id, raw_uuid)
        if not access.can(need):
            raise Forbidden(
                f"this needs the {need.label} role in this workspace; you are a "
                f"{access.role.label}",
                code="forbidden_role",
                required_role=need.label,
                role=access.role.label,
            )
        return access

    # --- private terminals -------------------------------------------------------------------

    async def private_terminals(self, session_id: int) -> set[str]:
        async with self.db.read() as conn:
            return {str(r[0]) for r in await conn.execute(PRIVATE_STMT, {"sid": session_id})}

    async def may_use_terminal(self, access: Access, terminal_id: str) -> bool:
        """Whether ``access`` may list or attach to the terminal (private ones: the owner only)."""
        if access.is_owner:
            return True
        return terminal_id not in await self.private_terminals(access.ref.session_id)

    # --- invalidation and disconnection --------------------------------------------------------

    async def changed(
        self, session_uuid: str, user_id: int | None = None, *, terminal_id: str | None = None
    ) -> None:
        """A member's role changed or was revoked (``user_id``; ``None``: everyone's, e.g. an
        ownership transfer), or a terminal became private (``terminal_id``): drop the cached
        answers and close the affected sockets on this and every other replica."""
        message: dict[str, Any] = {"type": _MSG, "user_id": user_id, "terminal_id": terminal_id}
        await self._apply(session_uuid, message)
        await self.events.publish_to_replicas(session_uuid, message)

    async def _on_replica_message(self, session_uuid: str, message: dict[str, Any]) -> None:
        if message.get("type") == _MSG:
            await self._apply(session_uuid, message)

    async def _apply(self, session_uuid: str, message: dict[str, Any]) -> None:
        user_id = message.get("user_id")
        terminal_id = message.get("terminal_id")
        with contextlib.suppress(ValueError):
            uid = uuid_mod.UUID(session_uuid)
            self._cache.forget(
                lambda key, _a: key[1] == uid and (user_id is None or key[0] == user_id)
            )
        owner_id: int | None = None
        if terminal_id is not None:
            owner_id = await self._owner_of(session_uuid)
        closing: list[Awaitable[None]] = []
        for entry in list(self._sockets.get(session_uuid, ())):
            if entry.closing:
                continue
            if terminal_id is not None:
                if entry.terminal_id != terminal_id or entry.user_id == owner_id:
                    continue
                reason = "this terminal was made private"
            elif user_id is not None and entry.user_id != user_id:
                continue
            else:
                reason = "your access to this workspace changed"
            entry.closing = True
            closing.append(entry.close(reason))
        for result in await asyncio.gather(*closing, return_exceptions=True):
            if isinstance(result, BaseException):
                log.info("closing a socket after an access change failed: %r", result)

    async def _owner_of(self, session_uuid: str) -> int | None:
        try:
            uid = uuid_mod.UUID(session_uuid)
        except ValueError:
            return None
        async with self.db.read() as conn:
            owner = (await conn.execute(select(_S.c.user_id).where(_S.c.uuid == uid))).scalar()
        return int(owner) if owner is not None else None

    @contextlib.contextmanager
    def register_socket(
        self,
        session_uuid: str,
        user_id: int,
        close: CloseSocket,
        *,
        terminal_id: str | None = None,
    ) -> Iterator[SocketEntry]:
        """Keep an open WebSocket of ``user_id`` known while the block runs: ``close(reason)``
        is called (once) when the user's access to the session changes or is revoked, or when
        the terminal it shows is made private. Every workspace WebSocket registers here."""
        entry = SocketEntry(user_id, close, terminal_id)
        self._sockets.setdefault(session_uuid, set()).add(entry)
        try:
            yield entry
        finally:
            entries = self._sockets.get(session_uuid)
            if entries is not None:
                entries.discard(entry)
                if not entries:
                    del self._sockets[session_uuid]

    def open_sockets(self, session_uuid: str) -> int:
        return len(self._sockets.get(session_uuid, ()))
