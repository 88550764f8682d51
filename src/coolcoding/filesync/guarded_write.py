"""DB -> sandbox writes that never bury a program's unsynced output (finding 3 of issue 12).

The editor's content replaces the sandbox file only through the agent's guarded swap
(``files.swap``, ``agent/guarded.py``): an atomic exchange inside the sandbox, after which the
replaced file is compared with the hashes the DB knows. Bytes the DB never saw (a terminal
appending between two syncs) are kept as a conflict copy, stored in the DB and announced with a
``conflict`` event; a writer still in flight at the exchange is caught by the agent's late look at
the replaced file (an ``fs.conflict`` event, or ``fs.late`` before a final sync). A lost write
with no conflict copy is the one outcome excluded.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection

from coolcoding.errors import DomainError, NotFound
from coolcoding.filesync.agentfs import Swapped
from coolcoding.filesync.materialize import DIR, forget, remap
from coolcoding.filesync.paths import ancestors, conflict_name
from coolcoding.filesync.session_state import SOURCE, SessionSync
from coolcoding.schemas.ws import ConflictEvent
from coolcoding.services.events import EventBus
from coolcoding.services.workspace import Change, WorkspaceService, content_hash
from coolcoding.settings import Settings

log = logging.getLogger(__name__)
Report = Callable[[SessionSync, str, str, str], Awaitable[None]]
LATE_WHY = "was written by a program while the editor replaced it"


class GuardedWriter:
    def __init__(
        self, workspace: WorkspaceService, events: EventBus, settings: Settings, report: Report
    ) -> None:
        self.workspace = workspace
        self.events = events
        self.settings = settings
        self._report = report

    async def put(
        self, st: SessionSync, rel: str, data: bytes | None, base: Collection[str], why: str
    ) -> Swapped | None:
        """Replace (``data`` = ``None``: remove) the sandbox file ``rel``; a file there whose hash
        is not in ``base`` is kept as an announced conflict copy. ``None``: not a plain file case
        (a missing parent, a folder in the way): the caller falls back to a plain write."""
        res = await st.files.swap(rel, data, base)
        if res is not None and res.aside is not None:
            await self._store_aside(st, rel, res.aside, res.old, why)
        return res

    async def apply(self, st: SessionSync, c: Change) -> None:
        """One editor/API change into the running sandbox (the caller holds ``st.lock``)."""
        if c.kind == "write":
            cur, content = await self.workspace.read(st.ref, c.path)
            prev = st.known.get(c.path)
            digest = cur.content_hash or ""
            base = {h for h in (prev, digest) if h and h != DIR}
            why = "was saved in the editor while a program changed it"
            res = await self.put(st, c.path, content, base, why)
            st.known[c.path] = digest
            for a in ancestors(c.path):
                st.known[a] = DIR
            if res is None:
                await st.sandbox.write_files({c.path: content})
        elif c.kind == "mkdir":
            st.known[c.path] = DIR
            await st.sandbox.write_files({c.path + "/": b""})
        elif c.kind == "delete":
            prev = st.known.get(c.path)
            forget(st.known, c.path)
            if c.item_type == "file" and prev is not None and prev != DIR:
                why = "was deleted in the editor while a program changed it"
                if await self.put(st, c.path, None, {prev}, why) is not None:
                    return
            await st.sandbox.write_files({c.path: None})
        elif c.kind == "move" and c.to_path:
            remap(st.known, c.path, c.to_path)
            try:
                try:
                    await st.files.rename(c.path, c.to_path)
                except FileExistsError:
                    # A program made the target meanwhile (not synced yet): keep it as a copy.
                    why = "was the target of a move in the editor while a program wrote it"
                    await self.put(st, c.to_path, None, (), why)
                    await st.files.rename(c.path, c.to_path)
            except OSError:
                log.warning("rename %s -> %s in the sandbox failed", c.path, c.to_path)

    async def keep_both(self, st: SessionSync, rel: str, loser_data: bytes, loser: str) -> None:
        """The DB version stays at ``rel``; the sandbox's file there (``loser_data`` and anything
        written to it since) becomes an announced conflict copy on both sides."""
        why = f"was changed in the editor and in the sandbox at the same time ({loser} lost)"
        try:
            cur, content = await self.workspace.read(st.ref, rel)
        except NotFound:
            cur, content = None, b""
        if cur is None or cur.type != "file":
            await self.store_copy(st, rel, loser_data, why)
            return
        digest = cur.content_hash or ""
        res = await self.put(st, rel, content, {digest}, why)
        st.known[rel] = digest
        if res is None:
            await st.sandbox.write_files({rel: content})
        if res is None or res.aside is None:
            # The file was not there to move aside (or already equal to the DB): keep the copy
            # that was read.
            await self.store_copy(st, rel, loser_data, why)

    def _free_name(self, st: SessionSync, rel: str, attempt: int) -> str:
        for n in range(attempt, attempt + 1000):
            name = conflict_name(rel, attempt=n)
            if name not in st.known:
                return name
        return conflict_name(rel, attempt=attempt + 1000)

    async def _store_aside(
        self, st: SessionSync, rel: str, cpath: str, data: bytes | None, why: str
    ) -> None:
        if data is not None:
            digest = content_hash(data)
            try:
                if st.known.get(cpath) != digest:  # not stored by a batch already
                    await self.workspace.save_file(
                        st.ref, cpath, data, base_version=0, source=SOURCE
                    )
                st.known[cpath] = digest
            except DomainError as exc:
                await self._report(st, cpath, exc.code, f"conflict copy not stored: {exc.message}")
        else:
            await self._report(
                st, cpath, "file_too_large", f"conflict copy {cpath!r} is too large to store"
            )
        await self.events.publish(
            st.ref.session_uuid,
            ConflictEvent(
                path=rel,
                conflict_path=cpath,
                message=f"{rel!r} {why}; the sandbox's unsynced version was kept as {cpath!r}",
            ).as_dict(),
        )

    async def store_copy(self, st: SessionSync, rel: str, data: bytes, why: str) -> None:
        """Keep ``data`` (content that lost at ``rel``) as a new conflict copy on both sides."""
        cpath = self._free_name(st, rel, 0)
        try:
            await st.sandbox.write_files({cpath: data})
        except Exception:
            log.exception("conflict copy %s not written into the sandbox", cpath)
        await self._store_aside(st, rel, cpath, data, why)

    # --- writers still in flight at the exchange -----------------------------------------------

    async def on_late_copy(self, st: SessionSync, rel: str, cpath: str) -> None:
        """The agent kept bytes written into a replaced file at ``cpath``: store, announce."""
        async with st.lock:
            await self._store_aside(st, rel, cpath, await st.files.read(cpath), LATE_WHY)

    async def late_checks(self, st: SessionSync) -> None:
        """Have the agent look at every replaced file now (before a final sync)."""
        try:
            copies = await st.files.late_copies()
        except Exception:
            log.exception("late checks of %s failed", st.ref.session_uuid)
            return
        for rel, cpath in copies:
            await self.on_late_copy(st, rel, cpath)
