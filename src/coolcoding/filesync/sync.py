"""Two-way sync between a session's files in the DB (the source of truth) and its running sandbox.

Everything on the sandbox side goes through its agent (``agentfs.py``): no host path, and the
watcher is the agent's inotify instance (the sandbox uid's), not one of the server's.

- Start: the sandbox's workspace is made equal to the DB (``materialize.py``).
- Sandbox -> DB: the agent's change batches (and a flush at the end of every shell command) are
  reconciled path by path against ``known`` (path -> content hash last agreed by both sides, or
  ``DIR``): cost follows what changed, never the workspace size. A full rescan happens only at
  start and after an inotify queue overflow. Writes use ``base_hash`` = the last agreed hash.
- DB -> sandbox: the workspace sink writes editor/API changes into the sandbox at once.
- Conflicts: whoever reached the DB first keeps the path; the other content is stored next to it
  as ``<name>.conflict-<timestamp><ext>`` (DB and sandbox) and a ``conflict`` event is published.
- Symlinks and special files are not stored: they are skipped and reported (``sync_error``), and
  never followed (see ``hostfs.py``). Files over the size limit or the quota are reported, not
  half-stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from coolcoding.errors import Conflict, DomainError, NotFound, TooLarge
from coolcoding.filesync.agentfs import AgentWatcher, Batch, Info, Probe, SandboxFiles
from coolcoding.filesync.budget import Pacer
from coolcoding.filesync.guarded_write import GuardedWriter
from coolcoding.filesync.materialize import DIR, forget, materialize, remap
from coolcoding.filesync.paths import ancestors, is_inside, shown_path
from coolcoding.filesync.session_state import SOURCE, SessionSync
from coolcoding.sandbox.base import Sandbox
from coolcoding.schemas.ws import ConflictEvent, Resync, SyncError
from coolcoding.services.events import EventBus
from coolcoding.services.workspace import Change, WorkspaceRef, WorkspaceService, content_hash
from coolcoding.settings import Settings

log = logging.getLogger(__name__)
__all__ = ["SOURCE", "SessionSync", "SyncEngine"]


# New files arriving together are stored in one transaction per chunk (e.g. an unpacked archive).
BULK_MIN = 16


class SyncEngine:
    def __init__(self, workspace: WorkspaceService, events: EventBus, settings: Settings) -> None:
        self.workspace = workspace
        self.events = events
        self.settings = settings
        self._sessions: dict[str, SessionSync] = {}
        self.writer = GuardedWriter(workspace, events, settings, self._report)
        workspace.sinks.append(self.on_db_changes)
        workspace.save_guards.append(self.before_save)

    def get(self, session_uuid: str) -> SessionSync | None:
        return self._sessions.get(session_uuid)

    # --- lifecycle ---------------------------------------------------------------------------

    async def attach(self, ref: WorkspaceRef, sandbox: Sandbox, *, recover: bool = False) -> None:
        """Watch the sandbox's workspace (through its agent) and make it equal to the DB.
        ``recover``: the sandbox ran without this engine (an earlier server process or a
        replica that died): its files are taken as newer first (``recover``)."""
        client = await sandbox.connect_agent()
        files = SandboxFiles(client, self.settings.max_file_bytes)
        st = SessionSync(ref, sandbox, files, {}, pacer=Pacer(self.settings.sync_files_per_s))
        self._sessions[ref.session_uuid] = st
        async with st.lock:
            # Subscribed first: a change made while the files are compared is an event later.
            st.watcher = AgentWatcher(
                client,
                lambda batch: self._on_batch(st, batch),
                lambda rel, cpath: self.writer.on_late_copy(st, rel, cpath),
                max_pending=self.settings.sync_backlog_max,
            )
            await st.watcher.start()
            if recover:
                await self._recover_files(st)
            st.known = await materialize(self.workspace, ref, sandbox, files, live=recover)

    async def recover(self, ref: WorkspaceRef, sandbox: Sandbox) -> None:
        """After an unclean server stop, for a sandbox that is not kept running: take its files
        as newer (``_recover_files``), without watching it."""
        client = await sandbox.connect_agent()
        try:
            st = SessionSync(ref, sandbox, SandboxFiles(client, self.settings.max_file_bytes), {})
            async with st.lock:
                await self._recover_files(st)
        finally:
            await client.close()

    async def _recover_files(self, st: SessionSync) -> None:
        """Reconcile by content hash after the sandbox ran unwatched: files the DB lacks are
        stored; a file whose hash differs is stored if it was written after the DB row's update
        (the sandbox is newer), else the DB's content goes back into the sandbox with the
        sandbox's version kept as an announced conflict copy (a write that raced the dead
        holder's last sync, or an editor save that never reached the sandbox: either way
        nothing is lost). Never deletes: a file deleted in the sandbox in the last moment
        before a crash comes back rather than one being lost."""
        items = {i.path: i for i in await self.workspace.list_items(st.ref)}
        st.known = {
            p: (DIR if i.type == "folder" else i.content_hash or "") for p, i in items.items()
        }
        todo: list[str] = []
        older: list[str] = []
        bad: set[str] = set()
        for path, info, sha in await st.files.walk(hashes=True):
            db = items.get(path)
            if info.type == "invalid_name":
                bad.add(path)
            elif db is None:
                todo.append(path)
            elif info.is_file and db.type == "file" and sha and sha != db.content_hash:
                newer = info.mtime > _utc_timestamp(db.updated_at)
                (todo if newer else older).append(path)
        st.allow_deletes = False
        try:
            await self._report_bad(st, bad)
            await self._sync_paths(st, todo)
        finally:
            st.allow_deletes = True
        for path in older:
            _, content = await self.workspace.read(st.ref, path)
            digest = st.known[path]
            why = "differed from the saved version when the sandbox was taken over"
            if await self.writer.put(st, path, content, {digest}, why) is None:
                await st.sandbox.write_files({path: content})

    async def detach(self, session_uuid: str, *, final_sync: bool = True) -> None:
        st = self._sessions.get(session_uuid)
        if st is None:
            return
        try:
            if final_sync:
                await self.writer.late_checks(st)
                if st.watcher is not None:
                    await st.watcher.flush()
        finally:
            self._sessions.pop(session_uuid, None)
            if st.watcher is not None:
                await st.watcher.close()
            else:
                await st.files.client.close()

    async def flush(self, session_uuid: str) -> None:
        """Sync everything changed so far (end of a shell command)."""
        st = self._sessions.get(session_uuid)
        if st is not None and st.watcher is not None:
            await st.watcher.flush()

    # --- sandbox -> DB -----------------------------------------------------------------------

    async def _on_batch(self, st: SessionSync, batch: Batch) -> None:
        async with st.lock:
            if batch.overflow:
                # The kernel's queue or our backlog overflowed: compare everything by content hash
                # instead of following events, then have the browser re-list the tree. At most one
                # rescan per interval (a storm overflows again and again); with the item quota
                # used up, only the stored entries are looked at (nothing new could be stored).
                wait = st.rescan_at + self.settings.sync_rescan_interval_s - _now()
                if wait > 0:
                    st.lock.release()
                    try:
                        await asyncio.sleep(wait)
                    finally:
                        await st.lock.acquire()
                st.rescan_at = _now()
                log.warning("sync backlog in %s: full rescan", st.ref.session_uuid)
                paths = set(st.known)
                if await self._room(st) > 0:
                    walked = await self._walk(st)
                    await self._report_bad(st, {p for p, i in walked if i.type == "invalid_name"})
                    paths.update(p for p, i in walked if i.type != "invalid_name")
                await self._sync_paths(st, paths)
                await self.events.publish(
                    st.ref.session_uuid, Resync(reason="sync_backlog").as_dict()
                )
            else:
                await self._report_bad(st, batch.bad)
                await self._sync_paths(st, batch.paths)
            st.synced_batches += 1

    async def _walk(self, st: SessionSync, rel: str = "") -> list[tuple[str, Info]]:
        try:
            return [(p, info) for p, info, _ in await st.files.walk(rel)]
        except Exception:  # e.g. more entries than the agent lists: the stored ones only
            log.warning("listing %s of %s failed", rel or "/", st.ref.session_uuid, exc_info=True)
            return []

    async def _report_bad(self, st: SessionSync, bad: set[str]) -> None:
        """Names that are not UTF-8 (shown escaped by the agent): one report each, not one per
        file below a bad folder."""
        for path in sorted(bad):
            if any(is_inside(path, b) and path != b for b in bad):
                continue
            msg = f"{path!r}: the name is not valid UTF-8: it is not stored"
            await self._report(st, path, "invalid_path", msg)

    async def _sync_paths(self, st: SessionSync, paths: Iterable[str]) -> None:
        """Called with ``st.lock`` held; releases it while waiting for the session's budget."""
        todo = await self._within_quota(st, set(paths))
        if not todo:
            return
        stats = await st.files.stats(todo)
        todo = await self._detect_moves(st, todo, stats)
        step = max(1, self.settings.sync_batch_files)
        for i in range(0, len(todo), step):
            if i:
                st.lock.release()
                try:
                    await st.pacer.spend(step)
                finally:
                    await st.lock.acquire()
            chunk = todo[i : i + step]
            probes = await st.files.probe(chunk)
            bulk = {p for p in chunk if p not in st.known and probes[p].data is not None}
            if len(bulk) < BULK_MIN:
                bulk = set()
            for rel in chunk:
                if rel not in bulk or rel in st.known:
                    await self._sync_one(st, rel, probes[rel])
            if bulk:
                await self._create_many(st, [(p, probes[p]) for p in chunk if p in bulk])

    async def _room(self, st: SessionSync) -> int:
        """How many more files and folders the workspace's item quota allows."""
        count, _ = await self.workspace.stats(st.ref)
        return max(0, self.settings.max_workspace_items - count)

    async def _within_quota(self, st: SessionSync, found: set[str]) -> list[str]:
        """``found`` sorted (parents before children), without the new entries beyond the
        workspace's item quota: they are dropped before any work is done on them, and the user
        is told once (until there is room again)."""
        known = [p for p in found if p in st.known]
        if len(known) == len(found):
            return sorted(known)
        limit = self.settings.max_workspace_items
        room = await self._room(st)
        if room == 0:  # a storm beyond the quota: no sort, no syscall for what cannot be stored
            new = [min(p for p in found if p not in st.known)]
            skipped = len(found) - len(known)
        else:
            new = sorted(p for p in found if p not in st.known)
            skipped = len(new) - room
        if skipped <= 0:
            st.quota_told = False
            return sorted(found)
        keep = set(new[:room])
        first = new[room] if room else new[0]
        await self._report_once(
            st,
            first,
            "quota_exceeded",
            f"workspace quota reached (at most {limit} files and folders): {skipped} new "
            f"files and folders in the sandbox, from {shown_path(first)!r} on, are not stored",
        )
        return sorted([*known, *keep])

    async def _create_many(self, st: SessionSync, files: list[tuple[str, Probe]]) -> None:
        """New files in bulk (one transaction per chunk); on any refusal, one by one."""
        contents = [(rel, pr.data) for rel, pr in files if pr.data is not None]
        try:
            await self.workspace.create_files(st.ref, contents, source=SOURCE)
        except TooLarge as exc:
            if exc.code == "quota_exceeded":
                await self._report_once(st, contents[0][0], exc.code, exc.message)
                return
            for rel, pr in files:
                await self._sync_one(st, rel, pr)
            return
        except DomainError:
            for rel, pr in files:
                await self._sync_one(st, rel, pr)
            return
        for rel, data in contents:
            st.known[rel] = content_hash(data)
            for a in ancestors(rel):
                st.known[a] = DIR

    async def _detect_moves(
        self, st: SessionSync, todo: list[str], stats: dict[str, Info | None]
    ) -> list[str]:
        """Turn a (vanished, appeared) pair into a DB move: a renamed file with the same content,
        or the only vanished and the only new directory of the batch. Returns what is left."""
        gone = [p for p in todo if p in st.known and stats.get(p) is None]
        gone = [p for p in gone if not any(is_inside(p, g) and p != g for g in gone)]
        new = [p for p in todo if p not in st.known]
        moved: set[str] = set()
        new_dirs = [p for p in new if _is_dir(stats.get(p))]
        gone_dirs = [p for p in gone if st.known[p] == DIR]
        pair = len(new_dirs) == 1 and len(gone_dirs) == 1
        if pair and await self._move(st, gone_dirs[0], new_dirs[0]):
            moved.update((gone_dirs[0], new_dirs[0]))
        by_hash = {st.known[p]: p for p in gone if st.known[p] != DIR and p not in moved}
        for p in new:
            if not by_hash:
                break
            if p in moved or not _is_file(stats.get(p)):
                continue
            data = (await st.files.probe([p]))[p].data
            src = by_hash.pop(content_hash(data), None) if data is not None else None
            if src is not None and await self._move(st, src, p):
                moved.update((src, p))
        return [p for p in todo if not any(is_inside(p, m) for m in moved)] if moved else todo

    async def _move(self, st: SessionSync, src: str, dst: str) -> bool:
        try:
            await self.workspace.move(st.ref, src, dst, source=SOURCE)
        except DomainError:
            return False
        remap(st.known, src, dst)
        for a in ancestors(dst):
            st.known[a] = DIR
        # Anything changed inside a moved folder in the same batch is caught by this walk.
        if st.known[dst] == DIR:
            for p, _info in await self._walk(st, dst):
                await self._sync_one(st, p)
        return True

    async def _sync_one(self, st: SessionSync, rel: str, probe: Probe | None = None) -> None:
        try:
            # A stored path was normalized when it was stored (a rescan looks at thousands).
            rel = rel if rel in st.known else self.workspace.normalize(rel)
        except DomainError as exc:
            await self._report(st, rel, exc.code, exc.message)
            return
        if probe is None:
            probe = (await st.files.probe([rel])).get(rel, Probe(None))
        info = probe.info
        prev = st.known.get(rel)
        if info is None or not (info.is_dir or info.is_file):
            if info is not None:
                kind = "symlink" if info.type == "symlink" else "special file"
                await self._report(
                    st, rel, "not_synced", f"{rel!r} is a {kind}: it is not stored in the workspace"
                )
            if prev is not None:
                await self._delete_in_db(st, rel, prev)
            return
        if info.is_dir:
            if prev == DIR:
                return
            if prev is not None:
                await self._delete_in_db(st, rel, prev)
            try:
                await self.workspace.make_folder(st.ref, rel, source=SOURCE)
            except DomainError as exc:
                await self._report(st, rel, exc.code, exc.message)
                return
            st.known[rel] = DIR
            for a in ancestors(rel):
                st.known[a] = DIR
            return
        limit = self.settings.max_file_bytes
        if info.size > limit:
            await self._report(
                st, rel, "file_too_large", f"{rel!r} is over {limit} bytes: not stored"
            )
            return
        data = probe.data
        if data is None or len(data) > limit:
            return
        digest = content_hash(data)
        if prev == digest:
            return
        if prev == DIR:
            await self._delete_in_db(st, rel, prev)
            prev = None
        await self._save(st, rel, data, digest, prev)

    async def _save(
        self, st: SessionSync, rel: str, data: bytes, digest: str, prev: str | None
    ) -> None:
        try:
            await self.workspace.save_file(
                st.ref,
                rel,
                data,
                base_hash=prev,
                base_version=0 if prev is None else None,
                source=SOURCE,
            )
        except Conflict as exc:
            if exc.code not in ("version_conflict", "already_exists"):
                await self._report(st, rel, exc.code, exc.message)
                return
            await self.writer.keep_both(st, rel, data, loser="sandbox")
            return
        except DomainError as exc:
            if exc.code == "quota_exceeded":
                await self._report_once(st, rel, exc.code, exc.message)
            else:
                await self._report(st, rel, exc.code, exc.message)
            return
        st.known[rel] = digest
        for a in ancestors(rel):
            st.known[a] = DIR
        st.reported = {r for r in st.reported if r[0] != rel}

    async def _delete_in_db(self, st: SessionSync, rel: str, prev: str) -> None:
        if not st.allow_deletes:
            return
        if prev != DIR:
            try:
                cur, content = await self.workspace.read(st.ref, rel)
            except NotFound:
                cur = None
            if cur is not None and cur.content_hash != prev:
                # The editor saved newer content that the program's delete never saw: keep it.
                st.known[rel] = cur.content_hash or ""
                why = "was deleted in the sandbox after an editor save"
                if await self.writer.put(st, rel, content, (), why) is None:
                    await st.sandbox.write_files({rel: content})
                await self.events.publish(
                    st.ref.session_uuid,
                    ConflictEvent(
                        path=rel,
                        conflict_path=rel,
                        message=f"{rel!r} was deleted in the sandbox after an editor save; "
                        "the saved version was kept",
                    ).as_dict(),
                )
                return
        try:
            await self.workspace.delete(st.ref, rel, source=SOURCE)
        except NotFound:
            pass
        except DomainError as exc:
            await self._report(st, rel, exc.code, exc.message)
            return
        forget(st.known, rel)

    async def _report_once(self, st: SessionSync, rel: str, code: str, message: str) -> None:
        """A session-wide problem (the quota): one event until there is room again."""
        if st.quota_told:
            return
        st.quota_told = True
        st.reported.discard((rel, code))
        await self._report(st, rel, code, message)

    async def _report(self, st: SessionSync, rel: str, code: str, message: str) -> None:
        if (rel, code) in st.reported:
            return
        st.reported.add((rel, code))
        path, message = shown_path(rel), shown_path(message)
        log.info("sync of %s/%s skipped: %s", st.ref.session_uuid, path, message)
        await self.events.publish(
            st.ref.session_uuid,
            SyncError(path=path, error=code, message=message).as_dict(),
        )

    # --- DB -> sandbox -----------------------------------------------------------------------

    async def on_db_changes(self, session_uuid: str, changes: Sequence[Change]) -> None:
        """Workspace sink: apply editor/API changes to the running sandbox. Never raises (the
        DB transaction already committed; a failure here is logged and healed at next start)."""
        ours = [c for c in changes if c.source != SOURCE]
        st = self._sessions.get(session_uuid)
        if not ours or st is None:
            return
        try:
            async with st.lock:
                # Unsynced program changes first, so an editor write cannot bury them.
                # (The agent's watcher holds them: the guarded writes below keep what they
                # would overwrite.)
                for c in ours:
                    await self.writer.apply(st, c)
        except Exception:
            log.exception("writing an editor change into sandbox %s failed", session_uuid)

    async def before_save(self, session_uuid: str, path: str, source: str) -> None:
        """An editor save of ``path`` first stores the program's pending change to it, so a save
        based on the older version gets a 409 instead of making a conflict copy."""
        st = self._sessions.get(session_uuid)
        if source == SOURCE or st is None or st.watcher is None:
            return
        try:
            async with st.lock:
                if st.known.get(path, DIR) != DIR and await st.watcher.pending(path):
                    await self._sync_one(st, path)
        except Exception:
            log.exception("syncing %s before an editor save failed", path)


def _now() -> float:
    return asyncio.get_running_loop().time()


def _utc_timestamp(dt: datetime) -> float:
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _is_dir(info: Info | None) -> bool:
    return info is not None and info.is_dir


def _is_file(info: Info | None) -> bool:
    return info is not None and info.is_file
