"""The co-editing WebSocket (/api/sessions/{uuid}/collab): one socket per workspace, carrying the
Yjs sync and awareness messages of every file the client has open plus the workspace presence
(frames: collab/protocol.py; JSON messages: schemas/ws.py ``Collab*``; docs/API.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass

from fastapi import APIRouter, WebSocket
from pycrdt import YMessageType
from pydantic import ValidationError

from coolcoding.api.errors import ws_close_code
from coolcoding.api.ws.auth import WS_POLICY, authorize, close_quietly, platform_of, revocable
from coolcoding.collab.document import UpdateRefused
from coolcoding.collab.hub import CollabHub
from coolcoding.collab.protocol import PRESENCE, FrameError, parse_frame
from coolcoding.collab.rooms import OpenDoc
from coolcoding.errors import DomainError
from coolcoding.schemas.ws import (
    CollabClientMessage,
    CollabError,
    CollabFlush,
    CollabHello,
    CollabJoin,
    CollabJoined,
    CollabLeave,
    CollabUser,
    Ping,
    Pong,
)
from coolcoding.services.access import Access, Role
from coolcoding.services.accounts import Principal
from coolcoding.services.workspace import WorkspaceRef

log = logging.getLogger(__name__)
router = APIRouter()
COLLAB_PATH = "/api/sessions/{session_uuid}/collab"

COLORS = ("#e06c75", "#61afef", "#98c379", "#c678dd", "#e5c07b", "#56b6c2", "#d19a66", "#be5046")


@dataclass(frozen=True)
class CollabAccess:
    principal: Principal
    ref: WorkspaceRef
    writable: bool
    access: Access


async def authorize_collab(ws: WebSocket, session_uuid: str) -> CollabAccess:
    """Who may co-edit this workspace and whether they may write: any member sees the
    documents and the others' cursors; a viewer gets ``writable=False`` (their updates are
    refused), an editor or above ``writable=True``."""
    principal, _session, access = await authorize(ws, session_uuid, WS_POLICY[COLLAB_PATH])
    return CollabAccess(
        principal=principal, ref=access.ref, writable=access.can(Role.EDITOR), access=access
    )


class SocketPeer:
    """A connection's outgoing frames, queued so that a slow client never blocks the others."""

    def __init__(
        self, ws: WebSocket, writable: bool, name: str, limit: int, user_id: int | None = None
    ) -> None:
        self.ws = ws
        self._writable = writable
        self.revoked: asyncio.Event | None = None  # set: access changed, nothing more applied
        self.name = name
        self.user_id = user_id
        self.queue: asyncio.Queue[bytes | str | None] = asyncio.Queue(maxsize=limit)
        self.overflowed = False

    @property
    def writable(self) -> bool:
        return self._writable and not (self.revoked is not None and self.revoked.is_set())

    def send(self, frame: bytes | str) -> None:
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.overflowed = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(None)  # the writer closes: the client reconnects and resyncs

    async def writer(self) -> None:
        while True:
            frame = await self.queue.get()
            if frame is None:
                return
            if isinstance(frame, bytes):
                await self.ws.send_bytes(frame)
            else:
                await self.ws.send_text(frame)


def user_of(principal: Principal) -> CollabUser:
    digest = hashlib.sha256(str(principal.user_id).encode()).digest()
    return CollabUser(
        id=principal.user_id, name=principal.username, color=COLORS[digest[0] % len(COLORS)]
    )


@router.websocket(COLLAB_PATH)
async def collab_socket(ws: WebSocket, session_uuid: str) -> None:
    platform = platform_of(ws)
    await ws.accept()
    try:
        access = await authorize_collab(ws, session_uuid)
    except DomainError as exc:
        await close_quietly(ws, ws_close_code(exc), exc.message)
        return
    hub = platform.collab
    settings = platform.settings
    peer = SocketPeer(
        ws,
        access.writable,
        access.principal.username,
        settings.collab_send_queue,
        user_id=access.principal.user_id,
    )
    peer.send(
        CollabHello(
            user=user_of(access.principal),
            writable=access.writable,
            max_update_bytes=settings.collab_max_update_bytes,
            max_doc_bytes=settings.collab_max_doc_bytes,
        ).as_json()
    )
    open_docs: dict[str, OpenDoc] = {}
    writer = asyncio.create_task(peer.writer())
    stack = contextlib.AsyncExitStack()  # a role change or revocation closes it (4403)
    peer.revoked = await stack.enter_async_context(revocable(ws, access.access))
    await hub.join_presence(peer, access.ref)
    try:
        reader = asyncio.create_task(_read(ws, hub, peer, access, open_docs))
        await asyncio.wait([reader, writer], return_when=asyncio.FIRST_COMPLETED)
        for t in (reader, writer):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
    finally:
        for od in list(open_docs.values()):
            with contextlib.suppress(Exception):
                await hub.close(peer, od)
        with contextlib.suppress(Exception):
            await hub.leave_presence(peer, access.ref)
        await stack.aclose()
    if peer.revoked.is_set():
        return  # closed by the revocation
    if peer.overflowed:
        await close_quietly(ws, 4408, "too slow: reconnect to resync")
    else:
        await close_quietly(ws, 1000, "bye")


async def _read(
    ws: WebSocket, hub: CollabHub, peer: SocketPeer, access: CollabAccess, docs: dict[str, OpenDoc]
) -> None:
    limit = hub.settings.collab_max_update_bytes + 8192  # an update plus its channel name
    while True:
        m = await ws.receive()
        if m["type"] == "websocket.disconnect":
            return
        data = m.get("bytes")
        if data is not None:
            if len(data) > limit:
                peer.send(
                    CollabError(
                        error="update_too_large",
                        message=f"the frame is {len(data)} bytes; the limit is {limit}",
                    ).as_json()
                )
                continue
            await _on_frame(hub, peer, access, docs, data)
        elif m.get("text") is not None:
            await _on_text(hub, peer, access, docs, m["text"])


async def _on_text(
    hub: CollabHub, peer: SocketPeer, access: CollabAccess, docs: dict[str, OpenDoc], text: str
) -> None:
    try:
        msg = CollabClientMessage.model_validate_json(text).root
    except ValidationError as exc:
        peer.send(
            CollabError(
                error="bad_message", message=f"not a co-editing message: {exc.errors()[0]['msg']}"
            ).as_json()
        )
        return
    if isinstance(msg, Ping):
        peer.send(Pong().as_json())
    elif isinstance(msg, CollabJoin):
        try:
            path = hub.workspace.normalize(msg.path)
            if path in docs:
                od = docs[path]
            elif len(docs) >= hub.settings.collab_max_docs_per_connection:
                raise UpdateRefused(
                    "too_many_documents",
                    f"at most {hub.settings.collab_max_docs_per_connection} files open at once",
                )
            else:
                od = await hub.open(peer, access.ref, path)
                docs[path] = od
            peer.send(
                CollabJoined(
                    path=path, epoch=od.shared.epoch, version=od.shared.base.version
                ).as_json()
            )
            # After ``joined``: the server's sync step 1 and the cursors. (Updates that reached
            # the client before ``joined`` are ignored by it; this exchange brings them back.)
            hub.greet(peer, od)
        except UpdateRefused as exc:
            peer.send(CollabError(path=msg.path, error=exc.code, message=exc.message).as_json())
        except DomainError as exc:
            peer.send(CollabError(path=msg.path, error=exc.code, message=exc.message).as_json())
    elif isinstance(msg, CollabFlush):
        flushed = docs.get(msg.path)
        if flushed is None:
            peer.send(
                CollabError(
                    path=msg.path, error="not_joined", message=f"join {msg.path!r} first"
                ).as_json()
            )
        elif not peer.writable:
            peer.send(
                CollabError(
                    path=msg.path, error="read_only", message="you may only view this workspace"
                ).as_json()
            )
        else:
            await hub.flush(peer, flushed, msg.id)
    elif isinstance(msg, CollabLeave):
        left = docs.pop(msg.path, None)
        if left is not None:
            await hub.close(peer, left)


async def _on_frame(
    hub: CollabHub, peer: SocketPeer, access: CollabAccess, docs: dict[str, OpenDoc], data: bytes
) -> None:
    try:
        frame = parse_frame(data)
    except FrameError as exc:
        peer.send(CollabError(error="malformed_update", message=str(exc)).as_json())
        return
    try:
        if frame.path == PRESENCE:
            if frame.kind != YMessageType.AWARENESS:
                raise UpdateRefused("bad_message", "the presence channel carries awareness only")
            await hub.on_awareness(peer, access.ref, PRESENCE, None, frame.payload)
            return
        od = docs.get(frame.path)
        if od is None:
            raise UpdateRefused("not_joined", f"join {frame.path!r} first")
        if frame.kind == YMessageType.AWARENESS:
            await hub.on_awareness(peer, access.ref, frame.path, od, frame.payload)
        else:
            assert frame.sync_kind is not None
            await hub.on_sync(peer, od, frame.sync_kind, frame.payload)
    except UpdateRefused as exc:
        peer.send(CollabError(path=frame.path, error=exc.code, message=exc.message).as_json())
