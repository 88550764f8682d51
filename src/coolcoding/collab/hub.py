"""The co-editing hub of one replica: open documents, their clients, the relay between replicas,
saving to the database, and merging changes made outside the editor.

Across replicas (docs/API.md "Co-editing"):
- Every replica with clients of a document holds a copy. Updates and awareness travel as
  ``collab`` replica messages on the event bus; each replica applies them and forwards them to
  its clients. Delivery is at most once, so every ``collab_resync_interval_s`` each copy
  publishes its state vector and the others answer with what it lacks: copies converge.
- One replica saves a document: the holder of its saver lease (Redis ``SET NX PX``, renewed at
  every exchange; without Redis the one replica). It saves through ``WorkspaceService.save_file``
  with the version it last saved as its base (an optimistic check: a concurrent write is a 409,
  merged and saved again, never overwritten), so the version bump, file history and the sandbox
  write happen as for any editor save. A replica killed while saving loses only its lease; the
  next holder starts from the base in Redis and the DB, and the clients' own copies (they resync
  when they reconnect) bring back anything the dead replica had not passed on.
- A change made outside the editor (the sandbox sync, an upload, a restore) reaches every replica
  as a workspace event; the saver reads the file and merges it as a minimal edit branched from the
  saved base (``document.merge_external``), which travels to every copy as an ordinary update.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
import time
import zlib
from typing import Any

from pycrdt import YSyncMessageType

from coolcoding.collab.document import (
    EMPTY_UPDATE,
    Base,
    SharedDoc,
    UpdateRefused,
    initial_base,
    merge_external,
)
from coolcoding.collab.protocol import PRESENCE, FrameError, awareness_frame, sync_frame
from coolcoding.collab.rooms import (
    OpenDoc,
    Peer,
    Room,
    SessionRoom,
    awareness_entries,
    claimed_name,
)
from coolcoding.collab.store import DocStore
from coolcoding.errors import Conflict, DomainError, InvalidInput, NotFound, TooLarge
from coolcoding.schemas.ws import CollabClosed, CollabError, CollabFlushed, CollabSaved
from coolcoding.services.events import Event, EventBus
from coolcoding.services.workspace import WorkspaceRef, WorkspaceService
from coolcoding.services.workspace_types import looks_binary
from coolcoding.settings import Settings

log = logging.getLogger(__name__)

COLLAB = "collab"
SAVE_SOURCE = "collab"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def saved_message(od: OpenDoc) -> str:
    """``saved``: the text the DB holds for the document now (what the clients' save
    indicators compare their text with)."""
    base = od.shared.base
    raw = base.text.encode("utf-8")
    return CollabSaved(
        path=od.path, version=base.version or 0, bytes=len(raw), crc32=zlib.crc32(raw)
    ).as_json()


async def _hold_forever(marker: str, version: int) -> None:
    """Tests only (``collab_test_hold_after_save``): say where the saver is, then stay there."""
    from pathlib import Path

    await asyncio.to_thread(Path(marker).write_text, str(version))
    await asyncio.Event().wait()


class CollabHub:
    def __init__(
        self,
        workspace: WorkspaceService,
        events: EventBus,
        redis: Any,
        settings: Settings,
        replica_id: str,
    ) -> None:
        self.workspace = workspace
        self.events = events
        self.settings = settings
        interval_ms = int(settings.collab_resync_interval_s * 1000)
        self.store = DocStore(
            redis if events.shared else None,
            replica_id,
            settings.collab_state_ttl_s,
            lease_ms=max(3 * interval_ms, 1000),
        )
        self.sessions: dict[str, SessionRoom] = {}
        self._opening: dict[tuple[str, str], asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # Flushes waiting for the saver on another replica: request id -> (peer, path, the
        # client's id, when it expires).
        self._flushes: dict[str, tuple[Peer, str, int, float]] = {}
        events.on_replica_message(self._on_replica)

    # --- connections -----------------------------------------------------------------------

    def _session(self, ref: WorkspaceRef) -> SessionRoom:
        room = self.sessions.get(ref.session_uuid)
        if room is None:
            room = self.sessions[ref.session_uuid] = SessionRoom()
            room.watcher = asyncio.create_task(self._watch(ref.session_uuid))
        return room

    def _maybe_drop_session(self, session_uuid: str) -> None:
        room = self.sessions.get(session_uuid)
        if room is not None and not room.docs and not room.presence_peers:
            del self.sessions[session_uuid]
            for key in [k for k in self._opening if k[0] == session_uuid]:
                if not self._opening[key].locked():
                    del self._opening[key]
            if room.watcher is not None:
                room.watcher.cancel()

    async def join_presence(self, peer: Peer, ref: WorkspaceRef) -> None:
        room = self._session(ref)
        room.presence_peers.add(peer)
        states = room.presence.states_update()
        if states is not None:
            peer.send(awareness_frame(PRESENCE, states))
        await self._publish(ref.session_uuid, {"op": "aw_query", "path": PRESENCE})

    async def leave_presence(self, peer: Peer, ref: WorkspaceRef) -> None:
        room = self.sessions.get(ref.session_uuid)
        if room is None:
            return
        room.presence_peers.discard(peer)
        removed = room.presence.remove_peer(peer)
        if removed is not None:
            self._send_local(room.presence_peers, awareness_frame(PRESENCE, removed), None)
            await self._publish(
                ref.session_uuid, {"op": "awareness", "path": PRESENCE, "data": _b64(removed)}
            )
        self._maybe_drop_session(ref.session_uuid)

    async def open(self, peer: Peer, ref: WorkspaceRef, path: str) -> OpenDoc:
        """Add ``peer`` to the document of ``path`` (loaded if this replica has no copy). Raises
        the domain error to report."""
        key = (ref.session_uuid, path)
        lock = self._opening.setdefault(key, asyncio.Lock())
        async with lock:
            room = self._session(ref)
            od = room.docs.get(path)
            if od is None:
                try:
                    od = await self._load(ref, path)
                except BaseException:
                    self._maybe_drop_session(ref.session_uuid)
                    raise
                room.docs[path] = od
                od.saver = await self.store.hold_saver(ref.session_uuid, path)
                od.ticker = asyncio.create_task(self._tick(od))
                await self._publish(ref.session_uuid, {"op": "aw_query", "path": path})
                if od.saver and od.shared.base.version is not None:
                    self._spawn(self._reconcile(od))
            od.peers.add(peer)
        return od

    def greet(self, peer: Peer, od: OpenDoc) -> None:
        """The server's sync step 1 and the document's cursors, to a client that just joined."""
        peer.send(sync_frame(od.path, YSyncMessageType.SYNC_STEP1, od.shared.state_vector()))
        states = od.room.states_update()
        if states is not None:
            peer.send(awareness_frame(od.path, states))
        peer.send(saved_message(od))

    async def _load(self, ref: WorkspaceRef, path: str) -> OpenDoc:
        info, content = await self.workspace.read(ref, path)
        self._check_editable(path, info.type, content)
        fresh = initial_base(ref.session_uuid, path, info.version, content.decode("utf-8"))
        base = await self.store.get_or_create(ref.session_uuid, path, fresh)
        shared = SharedDoc(
            base,
            max_update_bytes=self.settings.collab_max_update_bytes,
            max_doc_bytes=self.settings.collab_max_doc_bytes,
        )
        return OpenDoc(ref=ref, path=path, shared=shared, room=Room())

    def _check_editable(self, path: str, typ: str, content: bytes) -> None:
        if typ != "file":
            raise Conflict(f"{path!r} is a folder", code="is_a_folder", path=path)
        if looks_binary(content):
            raise InvalidInput(
                f"{path!r} is a binary file: it cannot be co-edited", code="binary_file", path=path
            )
        limit = self.settings.collab_max_doc_bytes
        if len(content) > limit:
            raise TooLarge(
                f"{path!r} is {len(content)} bytes; files over {limit} bytes cannot be co-edited",
                code="file_too_large",
                limit_bytes=limit,
            )

    async def close(self, peer: Peer, od: OpenDoc) -> None:
        """``peer`` leaves the document; the last one out saves it (if this replica is its
        saver) or hands its whole state to the other replicas, then the copy is dropped."""
        od.peers.discard(peer)
        removed = od.room.remove_peer(peer)
        if removed is not None:
            self._send_local(od.peers, awareness_frame(od.path, removed), None)
            await self._publish(
                od.ref.session_uuid, {"op": "awareness", "path": od.path, "data": _b64(removed)}
            )
        if od.peers or od.closed:
            return
        await self._drop(od, flush=True)

    async def _drop(self, od: OpenDoc, *, flush: bool) -> None:
        od.closed = True
        room = self.sessions.get(od.ref.session_uuid)
        if room is not None and room.docs.get(od.path) is od:
            del room.docs[od.path]
        if od.ticker is not None:
            od.ticker.cancel()
        if flush:
            if od.saver:
                if od.save_task is not None:
                    od.save_task.cancel()
                await self._save(od)
            elif self.events.shared:
                await self._publish_update(od, od.shared.doc.get_update())
        if od.saver:
            await self.store.release_saver(od.ref.session_uuid, od.path)
            if not self.events.shared:
                await self.store.forget(od.ref.session_uuid, od.path)
        self._maybe_drop_session(od.ref.session_uuid)

    # --- client messages -------------------------------------------------------------------

    async def on_sync(self, peer: Peer, od: OpenDoc, sync_kind: int, payload: bytes) -> None:
        """A sync message of a client. Raises ``UpdateRefused`` (the document is untouched)."""
        if sync_kind == YSyncMessageType.SYNC_STEP1:
            try:
                missing = od.shared.missing_for(payload)
            except Exception as exc:
                raise UpdateRefused("malformed_update", f"bad state vector: {exc}") from exc
            peer.send(sync_frame(od.path, YSyncMessageType.SYNC_STEP2, missing))
            return
        if not peer.writable:
            # A viewer's client still answers the server's sync step 1 (with what it already
            # has, which changes nothing); anything that would change the text is refused.
            if od.shared.would_change(payload):
                raise UpdateRefused("read_only", "you may only view this workspace")
            return
        od.shared.apply(payload)
        if payload != EMPTY_UPDATE:
            od.last_author = peer.user_id
            self._send_local(
                od.peers, sync_frame(od.path, YSyncMessageType.SYNC_UPDATE, payload), peer
            )
            await self._publish_update(od, payload)
            self._schedule_save(od)

    async def on_awareness(
        self, peer: Peer, ref: WorkspaceRef, channel: str, od: OpenDoc | None, payload: bytes
    ) -> None:
        """An awareness update (cursor, presence) of a client, for its own client ids only."""
        if len(payload) > self.settings.collab_max_update_bytes:
            raise UpdateRefused("update_too_large", "the awareness update is too large")
        try:
            entries = awareness_entries(payload)
        except FrameError as exc:
            raise UpdateRefused("malformed_awareness", str(exc)) from exc
        ids = [cid for cid, _ in entries]
        for _, state in entries:
            name = claimed_name(state)
            if name is not None and name != peer.name:
                # A cursor or presence entry labelled with someone else's name: impersonation.
                raise UpdateRefused("malformed_awareness", "an awareness state shows another name")
        if od is not None:
            room, peers = od.room, od.peers
        else:
            session = self.sessions.get(ref.session_uuid)
            if session is None or peer not in session.presence_peers:
                raise UpdateRefused("not_joined", "join the workspace's presence first")
            room, peers = session.presence, session.presence_peers
        for cid in ids:
            owner = room.owners.get(cid)
            if owner is not None and owner is not peer:
                raise UpdateRefused("malformed_awareness", f"client {cid} belongs to someone else")
        try:
            room.awareness.apply_awareness_update(payload, "client")
        except Exception as exc:
            raise UpdateRefused("malformed_awareness", f"bad awareness update: {exc}") from exc
        for cid in ids:
            room.owners[cid] = peer
        self._send_local(peers, awareness_frame(channel, payload), peer)
        await self._publish(
            ref.session_uuid, {"op": "awareness", "path": channel, "data": _b64(payload)}
        )

    # --- flush (save now, before a run) --------------------------------------------------

    async def flush(self, peer: Peer, od: OpenDoc, request_id: int) -> None:
        """Save ``od`` now and answer ``peer`` with ``flushed``. The updates this client sent
        before the flush were applied here and published before it, so the saver, here or on
        another replica (asked over the event bus, in the same order), has them when it saves."""
        if od.saver or not self.events.shared:
            peer.send(await self._flush_answer(od, request_id))
            return
        now = time.monotonic()
        for req in [r for r, v in self._flushes.items() if v[3] < now]:
            del self._flushes[req]
        req = secrets.token_hex(8)
        self._flushes[req] = (peer, od.path, request_id, now + self.settings.collab_flush_timeout_s)
        await self._publish(
            od.ref.session_uuid,
            {"op": "flush", "path": od.path, "epoch": od.shared.epoch, "req": req},
        )

    async def _flush_answer(self, od: OpenDoc, request_id: int) -> str:
        ok = await self._save(od)  # after a save under way (the lock), with what came since
        if ok and od.shared.content() != od.shared.base.text:
            self._schedule_save(od)  # typed during the save: saved by the next round
        return CollabFlushed(
            path=od.path,
            id=request_id,
            ok=ok,
            version=od.shared.base.version if ok else None,
            message=None if ok else od.save_error or "the file could not be saved",
        ).as_json()

    async def _notify(self, od: OpenDoc, message: str) -> None:
        """A JSON message about the document to its clients on every replica."""
        self._send_local(od.peers, message, None)
        await self._publish(
            od.ref.session_uuid,
            {"op": "notice", "path": od.path, "epoch": od.shared.epoch, "data": message},
        )

    # --- saving and outside changes ------------------------------------------------------

    def _schedule_save(self, od: OpenDoc) -> None:
        """Save at most ``collab_save_debounce_ms`` after a change (continuous typing saves at
        that rate, so the DB is never further behind)."""
        if not od.saver or od.closed or (od.save_task is not None and not od.save_task.done()):
            return

        async def later() -> None:
            # Edits that arrive while a save runs schedule nothing (this task is not done):
            # they are saved by the next round, until the document equals what was saved.
            while True:
                await asyncio.sleep(self.settings.collab_save_debounce_ms / 1000)
                if not await self._save(od) or od.closed or not od.saver:
                    return
                if od.shared.content() == od.shared.base.text:
                    return

        od.save_task = self._spawn(later())

    async def _save(self, od: OpenDoc) -> bool:
        """Save the document if it changed; whether it is saved (False: it could not be)."""
        async with od.lock:
            for _ in range(5):
                text, state = od.shared.snapshot()
                base = od.shared.base
                if text == base.text:
                    return True
                await self.store.put_pending(
                    od.ref.session_uuid, od.path, Base(base.version, text, state, base.epoch)
                )
                try:
                    info, _ = await self.workspace.save_file(
                        od.ref,
                        od.path,
                        text.encode("utf-8"),
                        base_version=base.version,
                        source=SAVE_SOURCE,
                        author_id=od.last_author,
                    )
                except Conflict as exc:
                    if exc.code != "version_conflict" or exc.extra.get("current_version") is None:
                        await self._closed(od, "file_deleted", str(exc))
                        return False
                    # Written meanwhile (the sandbox, an upload): merge it, then save again.
                    if not await self._reconcile_locked(od):
                        return False
                    continue
                except DomainError as exc:  # over the quota...: the edits stay in the document
                    od.save_error = exc.message
                    await self._notify(
                        od,
                        CollabError(
                            path=od.path, error="save_failed", message=exc.message
                        ).as_json(),
                    )
                    return False
                od.save_error = None
                if self.settings.collab_test_hold_after_save:  # a fault test's kill point
                    await _hold_forever(self.settings.collab_test_hold_after_save, info.version)
                od.shared.base = Base(info.version, text, state, base.epoch)
                await self.store.put(od.ref.session_uuid, od.path, od.shared.base)
                await self._notify(od, saved_message(od))
                return True
            return False

    async def _reconcile(self, od: OpenDoc) -> None:
        async with od.lock:
            await self._reconcile_locked(od)
        if od.shared.content() != od.shared.base.text:
            self._schedule_save(od)

    async def _reconcile_locked(self, od: OpenDoc) -> bool:
        """Bring a change of the file in the DB into the document; whether it is still open."""
        try:
            info, content = await self.workspace.read(od.ref, od.path)
            self._check_editable(od.path, info.type, content)
        except DomainError as exc:
            await self._closed(
                od, "file_deleted" if isinstance(exc, NotFound) else exc.code, exc.message
            )
            return False
        base = od.shared.base
        if info.version == base.version:
            return True
        new = content.decode("utf-8")
        if new == base.text:
            od.shared.base = Base(info.version, base.text, base.state, base.epoch)
        elif new == od.shared.content():
            text, state = od.shared.snapshot()
            od.shared.base = Base(info.version, text, state, base.epoch)
        elif (own := await self._own_save(od, base, new)) is not None:
            # A saver (killed before it recorded the base) saved this from the document: its
            # items are the document's already; merging it as an outside change would add the
            # text again. It becomes the base as it was saved.
            od.shared.base = Base(info.version, own.text, own.state, base.epoch)
        else:
            update, od.shared.base = merge_external(base, new, info.version)
            od.shared.apply_trusted(update)
            self._send_local(
                od.peers, sync_frame(od.path, YSyncMessageType.SYNC_UPDATE, update), None
            )
            await self._publish_update(od, update)
        await self.store.put(od.ref.session_uuid, od.path, od.shared.base)
        await self._notify(od, saved_message(od))
        return True

    async def _own_save(self, od: OpenDoc, base: Base, text: str) -> Base | None:
        """The pending save (``DocStore.put_pending``) if ``text`` in the DB is what a saver of
        this document saved over ``base``."""
        pending = await self.store.get_pending(od.ref.session_uuid, od.path)
        if (
            pending is not None
            and pending.epoch == base.epoch
            and pending.version == base.version
            and pending.text == text
        ):
            return pending
        return None

    async def _closed(self, od: OpenDoc, reason: str, message: str) -> None:
        """The file cannot be co-edited any more (deleted, moved, binary): tell the clients."""
        frame = CollabClosed(path=od.path, reason=reason, message=message).as_json()
        self._send_local(od.peers, frame, None)
        od.peers.clear()
        if not od.closed:
            saver = od.saver
            od.saver = False
            await self._drop(od, flush=False)
            if saver:
                await self.store.release_saver(od.ref.session_uuid, od.path)
                if reason == "file_deleted":
                    await self.store.forget(od.ref.session_uuid, od.path)

    async def _watch(self, session_uuid: str) -> None:
        """Workspace events (from every replica): outside changes of open files."""
        async with self.events.subscribe(session_uuid) as queue:
            while True:
                event = await queue.get()
                room = self.sessions.get(session_uuid)
                if room is None:
                    continue
                kind = event.get("type")
                if kind == "resync":
                    for each in list(room.docs.values()):
                        if each.saver:
                            self._spawn(self._reconcile(each))
                    continue
                path = event.get("from") if kind == "file_moved" else event.get("path")
                od = room.docs.get(path) if isinstance(path, str) else None
                if od is None:
                    continue
                if (
                    kind == "file_changed"
                    and od.saver
                    and event.get("version") != od.shared.base.version
                ):
                    self._spawn(self._reconcile(od))
                elif kind in ("file_deleted", "file_moved"):
                    reason = "file_deleted" if kind == "file_deleted" else "file_moved"
                    await self._closed(od, reason, f"{path!r} was {reason.split('_')[1]}")

    async def _tick(self, od: OpenDoc) -> None:
        """Renew the saver lease and publish the state vector (the anti-entropy exchange)."""
        interval = self.settings.collab_resync_interval_s
        while not od.closed:
            await asyncio.sleep(interval)
            try:
                was = od.saver
                od.saver = await self.store.hold_saver(od.ref.session_uuid, od.path)
                if od.saver and not was:
                    # Taken over: start from the last saved base, then merge the DB and save.
                    stored = await self.store.get(od.ref.session_uuid, od.path)
                    if stored is not None and stored.epoch == od.shared.epoch:
                        od.shared.base = stored
                    await self._reconcile(od)
                if self.events.shared:
                    await self._publish(
                        od.ref.session_uuid,
                        {
                            "op": "sv",
                            "path": od.path,
                            "epoch": od.shared.epoch,
                            "data": _b64(od.shared.state_vector()),
                        },
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("collab tick of %s failed", od.path, exc_info=True)

    # --- the relay between replicas ------------------------------------------------------

    async def _publish(self, session_uuid: str, message: dict[str, Any]) -> None:
        if self.events.shared:
            await self.events.publish_to_replicas(session_uuid, {"type": COLLAB, **message})

    async def _publish_update(self, od: OpenDoc, update: bytes) -> None:
        await self._publish(
            od.ref.session_uuid,
            {
                "op": "update",
                "path": od.path,
                "epoch": od.shared.epoch,
                "data": _b64(update),
                "author": od.last_author,
            },
        )

    async def _on_replica(self, session_uuid: str, message: Event) -> None:
        if message.get("type") != COLLAB:
            return
        room = self.sessions.get(session_uuid)
        path = message.get("path")
        if room is None or not isinstance(path, str):
            return
        op = message.get("op")
        if op == "flushed":
            pending = self._flushes.pop(str(message.get("req")), None)
            if pending is not None:
                peer, _, request_id, _ = pending
                answer = message.get("answer")
                if isinstance(answer, dict):
                    peer.send(CollabFlushed.model_validate({**answer, "id": request_id}).as_json())
            return
        od = room.docs.get(path)
        if op == "notice":
            data_text = message.get("data")
            if od is not None and isinstance(data_text, str):
                self._send_local(od.peers, data_text, None)
            return
        if op == "flush":
            if od is not None and od.saver and message.get("epoch") == od.shared.epoch:
                self._spawn(self._answer_flush(session_uuid, od, str(message.get("req"))))
            return
        try:
            data = base64.b64decode(message.get("data") or "")
        except ValueError:
            return
        if op == "aw_query":
            channel = room.presence if path == PRESENCE else (od.room if od else None)
            states = channel.states_update() if channel is not None else None
            if states is not None:
                await self._publish(
                    session_uuid, {"op": "awareness", "path": path, "data": _b64(states)}
                )
            return
        if op == "awareness":
            if path == PRESENCE:
                target, peers = room.presence, room.presence_peers
            elif od is not None:
                target, peers = od.room, od.peers
            else:
                return
            with contextlib.suppress(Exception):
                target.awareness.apply_awareness_update(data, "replica")
                self._send_local(peers, awareness_frame(path, data), None)
            return
        if od is None or message.get("epoch") != od.shared.epoch:
            return
        if op == "update":
            try:
                od.shared.apply_trusted(data)
            except Exception:
                log.warning("a malformed collab update from a replica was dropped")
                return
            # Forwarded even when it changed nothing here yet: a delete changes no state vector,
            # and an update waiting for a missing one is integrated later (clients do the same).
            if data != EMPTY_UPDATE:
                author = message.get("author")
                od.last_author = author if isinstance(author, int) else od.last_author
                self._send_local(
                    od.peers, sync_frame(path, YSyncMessageType.SYNC_UPDATE, data), None
                )
                self._schedule_save(od)
        elif op == "sv":
            try:
                missing = od.shared.missing_for(data)
            except Exception:
                return
            if missing != EMPTY_UPDATE:
                await self._publish_update(od, missing)

    async def _answer_flush(self, session_uuid: str, od: OpenDoc, req: str) -> None:
        answer = CollabFlushed.model_validate_json(await self._flush_answer(od, 0))
        await self._publish(
            session_uuid,
            {
                "op": "flushed",
                "path": od.path,
                "req": req,
                "answer": answer.model_dump(exclude={"id"}, exclude_none=True),
            },
        )

    # --- plumbing --------------------------------------------------------------------------

    @staticmethod
    def _send_local(peers: set[Peer], frame: bytes | str, exclude: Peer | None) -> None:
        for p in list(peers):
            if p is not exclude:
                p.send(frame)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)
        return task

    async def stop(self) -> None:
        """Save every document this replica saves (a graceful shutdown loses nothing)."""
        for room in list(self.sessions.values()):
            for od in list(room.docs.values()):
                with contextlib.suppress(Exception):
                    await self._drop(od, flush=True)
            if room.watcher is not None:
                room.watcher.cancel()
        self.sessions.clear()

    def open_documents(self) -> int:
        return sum(len(r.docs) for r in self.sessions.values())


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("collab task failed", exc_info=task.exception())
