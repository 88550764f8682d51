"""DB -> sandbox writes that never bury a program's unsynced output (finding 3 of issue 12).

The editor's content replaces the sandbox file only through ``WorkspaceDir.swap``: an atomic
exchange, after which the replaced file is compared with the hashes the DB knows. Bytes the DB
never saw (a terminal appending between two syncs) are kept as a conflict copy, stored in the DB
and announced with a ``conflict`` event; a writer still in flight at the exchange is caught by a
late look at the replaced file. A lost write with no conflict copy is the one outcome excluded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection

from coolcoding.errors import DomainError
from coolcoding.filesync.hostfs import LateCheck, Swapped
from coolcoding.filesync.materialize import conflict_name
from coolcoding.filesync.session_state import SOURCE, SessionSync
from coolcoding.schemas.ws import ConflictEvent
from coolcoding.services.events import EventBus
from coolcoding.services.workspace import WorkspaceService, content_hash
from coolcoding.settings import Settings

log = logging.getLogger(__name__)
Report = Callable[[SessionSync, str, str, str], Awaitable[None]]
# How long a replaced file is watched for a writer that opened it just before the exchange.
LATE_CHECK_S = 1.0


class GuardedWriter:
    def __init__(
        self, workspace: WorkspaceService, events: EventBus, settings: Settings, report: Report
    ) -> None:
        self.workspace = workspace
        self.events = events
        self.settings = settings
        self._report = report
        self._tasks: set[asyncio.Task[None]] = set()

    async def put(
        self, st: SessionSync, rel: str, data: bytes | None, base: Collection[str], why: str
    ) -> Swapped | None:
        """Replace (``data`` = ``None``: remove) the sandbox file ``rel``; a file there whose hash
        is not in ``base`` is kept as an announced conflict copy. ``None``: not a plain file case
        (a missing parent, a folder in the way): the caller falls back to a plain write."""
        limit = self.settings.max_file_bytes

        def aside(old: bytes | None, attempt: int) -> str | None:
            if old is not None and content_hash(old) in base:
                return None
            return self._free_name(st, rel, attempt)

        try:
            res = await asyncio.to_thread(st.dir.swap, rel, data, aside, limit)
        except OSError as exc:
            log.info("guarded write of %s fell back to a plain write: %s", rel, exc)
            return None
        if res.late is not None:
            self._watch_late(st, res.late)
        if res.aside is not None:
            await self._store_aside(st, rel, res.aside, res.old, why)
        return res

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
            try:
                await self.workspace.save_file(st.ref, cpath, data, base_version=0, source=SOURCE)
                st.known[cpath] = content_hash(data)
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

    def _watch_late(self, st: SessionSync, late: LateCheck) -> None:
        st.late.append(late)
        if st.late_timer is None:
            loop = asyncio.get_running_loop()
            st.late_timer = loop.call_later(LATE_CHECK_S, self._spawn_late, st)

    def _spawn_late(self, st: SessionSync) -> None:
        st.late_timer = None
        task = asyncio.ensure_future(self.late_checks(st))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def late_checks(self, st: SessionSync) -> None:
        """Look at every replaced file once more; what changed in it becomes a conflict copy."""
        if st.late_timer is not None:
            st.late_timer.cancel()
            st.late_timer = None
        async with st.lock:
            todo, st.late = st.late, []
            for late in todo:
                try:
                    data = await asyncio.to_thread(late.changed, self.settings.max_file_bytes)
                except OSError:
                    data = None
                finally:
                    late.close()
                if data is not None:
                    await self.store_copy(
                        st, late.rel, data, "was written by a program while the editor replaced it"
                    )
