"""Workspace files in the database (the source of truth): tree, read, save, folders, move, delete.

Every write runs in one transaction: either the whole operation lands or nothing does. A save
carries the version (or content hash) it was based on; a stale one is refused with the current
version, never applied silently. Listeners (the browser event bus, the sandbox writer) are told
after commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import orjson
from sqlalchemy import delete, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coolcoding.db.engine import Database
from coolcoding.db.models import WorkspaceItem, utcnow
from coolcoding.db.raw import first_row
from coolcoding.errors import Conflict, InvalidInput, NotFound, TooLarge
from coolcoding.filesync.paths import (
    PathRules,
    ancestors,
    is_inside,
    name_of,
    normalize_path,
    parent_of,
    subtree_bounds,
)
from coolcoding.services.blobstore import retrying
from coolcoding.services.workspace_types import (
    CURRENT_FOR_UPDATE_STMT,
    CURRENT_STMT,
    DEFAULT_CONTENT,
    DEFAULT_FILE,
    FAST_UPDATE_STMT,
    INFO_COLUMNS,
    INFO_STMT,
    LIST_KEYS,
    LIST_STMT,
    READ_STMT,
    STATS_STMT,
    UPDATE_CONTENT_STMT,
    Change,
    ChangeSink,
    ItemInfo,
    Recorder,
    SaveGuard,
    WorkspaceRef,
    content_hash,
    item_info,
    looks_binary,
)
from coolcoding.settings import Settings

__all__ = ["Change", "ChangeSink", "ItemInfo", "WorkspaceRef", "WorkspaceService", "content_hash"]


class WorkspaceService:
    """File operations of one platform instance; stateless between calls."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.rules = PathRules(
            max_name_bytes=settings.max_name_length,
            max_path_bytes=settings.max_path_length,
            max_depth=settings.max_depth,
        )
        self.sinks: list[ChangeSink] = []
        self.save_guards: list[SaveGuard] = []
        # File history (services/history.py): called inside each write's transaction.
        self.recorder: Recorder | None = None

    @property
    def _history(self) -> Recorder | None:
        rec = self.recorder
        return rec if rec is not None and rec.enabled else None

    def normalize(self, raw: str) -> str:
        return normalize_path(raw, self.rules)

    async def _notify(self, ref: WorkspaceRef, changes: Sequence[Change]) -> None:
        for sink in self.sinks:
            await sink(ref.session_uuid, changes)

    # --- reads -----------------------------------------------------------------------------

    async def list_items(self, ref: WorkspaceRef) -> list[ItemInfo]:
        async with self.db.read() as conn:
            rows = await conn.execute(LIST_STMT, {"sid": ref.session_id})
            return [item_info(r) for r in rows.all()]

    async def list_json(self, ref: WorkspaceRef) -> bytes:
        """The tree as the API's JSON body (``{"items": [...]}``), built straight from the rows:
        a 10,000-item tree through ItemInfo objects and the json module costs several times as
        much as the query."""
        async with self.db.read() as conn:
            rows = (await conn.execute(LIST_STMT, {"sid": ref.session_id})).all()
        keys = LIST_KEYS
        return orjson.dumps(
            {"items": [dict(zip(keys, row, strict=True)) for row in rows]},
            option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC,
        )

    async def read(self, ref: WorkspaceRef, raw_path: str) -> tuple[ItemInfo, bytes]:
        path = self.normalize(raw_path)
        async with self.db.read() as conn:
            row = await first_row(conn, READ_STMT, {"sid": ref.session_id, "path": path})
        if row is None:
            raise NotFound(f"no file or folder at {path!r}", code="file_not_found", path=path)
        return item_info(row), row[8] or b""

    async def stats(self, ref: WorkspaceRef) -> tuple[int, int]:
        """(item count, total bytes) of the workspace."""
        async with self.db.session() as s:
            return await self._stats(s, ref)

    async def _stats(self, s: AsyncSession, ref: WorkspaceRef) -> tuple[int, int]:
        row = (await s.execute(STATS_STMT, {"sid": ref.session_id})).one()
        return int(row[0]), int(row[1])

    async def iter_files(
        self, ref: WorkspaceRef, batch: int = 500
    ) -> AsyncIterator[tuple[str, str, bytes]]:
        """Every item as (path, type, content), folders first by path order (for materializing)."""
        async with self.db.session() as s:
            result = await s.stream(
                select(WorkspaceItem.full_path, WorkspaceItem.type, WorkspaceItem.content)
                .where(WorkspaceItem.session_id == ref.session_id)
                .order_by(WorkspaceItem.full_path)
                .execution_options(yield_per=batch)
            )
            async for path, typ, content in result:
                yield path, typ, content or b""

    # --- writes ----------------------------------------------------------------------------

    async def _check_quota(
        self, s: AsyncSession, ref: WorkspaceRef, add_items: int, add_bytes: int
    ) -> None:
        if add_items <= 0 and add_bytes <= 0:
            return
        count, total = await self._stats(s, ref)
        if count + add_items > self.settings.max_workspace_items:
            raise TooLarge(
                f"workspace quota exceeded: at most {self.settings.max_workspace_items} files and folders",
                code="quota_exceeded",
                limit_items=self.settings.max_workspace_items,
            )
        if total + add_bytes > self.settings.max_workspace_bytes:
            raise TooLarge(
                f"workspace quota exceeded: at most {self.settings.max_workspace_bytes} bytes "
                f"(in use: {total})",
                code="quota_exceeded",
                limit_bytes=self.settings.max_workspace_bytes,
            )

    async def _ensure_folders(
        self, s: AsyncSession, ref: WorkspaceRef, paths: list[str]
    ) -> tuple[int | None, list[str]]:
        """Make sure each of ``paths`` (outermost first) is a folder; returns (id of the last,
        paths created). A file in the way is a conflict."""
        if not paths:
            return None, []
        rows = (
            await s.execute(
                select(WorkspaceItem.full_path, WorkspaceItem.id, WorkspaceItem.type).where(
                    WorkspaceItem.session_id == ref.session_id, WorkspaceItem.full_path.in_(paths)
                )
            )
        ).all()
        existing = {r[0]: (r[1], r[2]) for r in rows}
        parent_id: int | None = None
        created: list[str] = []
        for p in paths:
            found = existing.get(p)
            if found is not None:
                if found[1] != "folder":
                    raise Conflict(f"{p!r} is a file, not a folder", code="not_a_folder", path=p)
                parent_id = found[0]
                continue
            item = WorkspaceItem(
                session_id=ref.session_id,
                parent_id=parent_id,
                name=name_of(p),
                type="folder",
                content=None,
                size_bytes=0,
                full_path=p,
                version=1,
            )
            s.add(item)
            await s.flush()
            parent_id = item.id
            created.append(p)
        return parent_id, created

    async def save_file(
        self,
        ref: WorkspaceRef,
        raw_path: str,
        content: bytes,
        *,
        base_version: int | None = None,
        base_hash: str | None = None,
        source: str = "api",
        author_id: int | None = None,
    ) -> tuple[ItemInfo, bool]:
        """Create or update a file. Returns (info, created). Unchanged content is a no-op."""
        return await retrying(
            lambda: self._save_file(
                ref,
                raw_path,
                content,
                base_version=base_version,
                base_hash=base_hash,
                source=source,
                author_id=author_id,
            )
        )

    async def _save_file(
        self,
        ref: WorkspaceRef,
        raw_path: str,
        content: bytes,
        *,
        base_version: int | None,
        base_hash: str | None,
        source: str,
        author_id: int | None,
    ) -> tuple[ItemInfo, bool]:
        path = self.normalize(raw_path)
        if len(content) > self.settings.max_file_bytes:
            raise TooLarge(
                f"{path!r} is {len(content)} bytes; the limit is {self.settings.max_file_bytes}",
                code="file_too_large",
                limit_bytes=self.settings.max_file_bytes,
            )
        if base_version or base_hash is not None:
            for guard in self.save_guards:
                await guard(ref.session_uuid, path, source)
        digest = content_hash(content)
        binary = looks_binary(content)
        history = self._history
        if base_version != 0 and history is None:
            # The common case, an edit of an existing file, in one statement (one round trip,
            # its own transaction); anything else (a new file, a conflict, a no-op, a folder,
            # the quota) matches no row and takes the general path below, which explains it.
            async with self.db.read() as conn:
                row = await first_row(
                    conn,
                    FAST_UPDATE_STMT,
                    {
                        "sid": ref.session_id,
                        "path": path,
                        "content": content,
                        "size": len(content),
                        "digest": digest,
                        "binary": binary,
                        "base_version": base_version,
                        "base_hash": base_hash,
                        "max_bytes": self.settings.max_workspace_bytes,
                        "now": utcnow(),
                    },
                )
            if row is not None:
                return await self._written(ref, item_info(row), [], source), False
        if (
            base_version != 0
            and history is not None
            and not self.db.is_sqlite
            and self.settings.history_single_statement_save
        ):
            # With history on (PostgreSQL): the edit and its version in one statement.
            async with self.db.read() as conn:
                done = await history.fast_save(
                    conn,
                    ref,
                    path,
                    content,
                    digest,
                    base_version=base_version,
                    base_hash=base_hash,
                    source=source,
                    author_id=author_id,
                    max_bytes=self.settings.max_workspace_bytes,
                )
            if done is not None:
                await history.after_fast_save(self.db, ref, done)
                return await self._written(ref, item_info(done.row), [], source), False
        changes: list[Change] = []
        try:
            async with self.db.session() as s, s.begin():
                params = {"sid": ref.session_id, "path": path}
                cur = (
                    await s.execute(
                        CURRENT_STMT if history is None else CURRENT_FOR_UPDATE_STMT, params
                    )
                ).first()
                if cur is not None:
                    item_id, typ, version, size, old_hash = cur[:5]
                    if typ == "folder":
                        raise Conflict(f"{path!r} is a folder", code="is_a_folder", path=path)
                    if base_version == 0:
                        raise Conflict(
                            f"{path!r} already exists",
                            code="already_exists",
                            current_version=version,
                        )
                    stale = (base_version is not None and base_version != version) or (
                        base_hash is not None and base_hash != old_hash
                    )
                    if stale:
                        raise Conflict(
                            f"{path!r} changed since version {base_version}: it is now version {version}",
                            code="version_conflict",
                            path=path,
                            current_version=version,
                            current_hash=old_hash,
                        )
                    if old_hash == digest:
                        return item_info((await s.execute(INFO_STMT, params)).one()), False
                    await self._check_quota(s, ref, 0, len(content) - size)
                    updated = (
                        await s.execute(
                            UPDATE_CONTENT_STMT,
                            {
                                "item_id": item_id,
                                "old_version": version,
                                "content": content,
                                "size": len(content),
                                "digest": digest,
                                "binary": binary,
                                "new_version": version + 1,
                                "now": utcnow(),
                                "author": author_id,
                            },
                        )
                    ).first()
                    if updated is None:
                        raise Conflict(
                            f"{path!r} was changed concurrently", code="version_conflict", path=path
                        )
                    info = item_info(updated)
                    created = False
                    if history is not None:
                        await history.on_write(
                            s,
                            ref,
                            path,
                            (old_hash, cur[5] or b""),
                            digest,
                            content,
                            source,
                            author_id,
                        )
                else:
                    if base_version not in (None, 0) or base_hash is not None:
                        raise Conflict(
                            f"{path!r} no longer exists (it was deleted or moved)",
                            code="version_conflict",
                            path=path,
                            current_version=None,
                        )
                    folder_paths = ancestors(path)
                    existing_parent = parent_of(path)
                    await self._check_quota(s, ref, 1 + len(folder_paths), len(content))
                    parent_id, made = await self._ensure_folders(s, ref, folder_paths)
                    assert (parent_id is None) == (existing_parent is None)
                    changes.extend(
                        Change("mkdir", p, "folder", version=1, source=source) for p in made
                    )
                    s.add(
                        WorkspaceItem(
                            session_id=ref.session_id,
                            parent_id=parent_id,
                            name=name_of(path),
                            type="file",
                            content=content,
                            is_binary=binary,
                            size_bytes=len(content),
                            content_hash=digest,
                            full_path=path,
                            version=1,
                            last_modified_by=author_id,
                        )
                    )
                    await s.flush()
                    info = item_info((await s.execute(INFO_STMT, params)).one())
                    created = True
                    if history is not None:
                        await history.on_write(
                            s, ref, path, None, digest, content, source, author_id
                        )
        except IntegrityError as exc:
            raise Conflict(
                f"{path!r} was created concurrently", code="already_exists", path=path
            ) from exc
        return await self._written(ref, info, changes, source), created

    async def _written(
        self, ref: WorkspaceRef, info: ItemInfo, changes: list[Change], source: str
    ) -> ItemInfo:
        """Tell the sinks about a saved file (after ``changes``, e.g. folders made for it)."""
        changes.append(
            Change("write", info.path, "file", version=info.version, size=info.size, source=source)
        )
        await self._notify(ref, changes)
        return info

    async def create_files(
        self, ref: WorkspaceRef, files: Sequence[tuple[str, bytes]], *, source: str = "api"
    ) -> list[ItemInfo]:
        """Create many new files (and the folders they need) in one transaction: all or nothing.

        For bulk arrivals (a sandbox program generating thousands of files); a path that already
        exists is a ``Conflict`` and nothing is written, so the caller can fall back to
        ``save_file`` one by one.
        """
        return await retrying(lambda: self._create_files(ref, files, source=source))

    async def _create_files(
        self, ref: WorkspaceRef, files: Sequence[tuple[str, bytes]], *, source: str
    ) -> list[ItemInfo]:
        entries: dict[str, bytes] = {}
        for raw, content in files:
            path = self.normalize(raw)
            if len(content) > self.settings.max_file_bytes:
                raise TooLarge(
                    f"{path!r} is {len(content)} bytes; the limit is {self.settings.max_file_bytes}",
                    code="file_too_large",
                    limit_bytes=self.settings.max_file_bytes,
                )
            entries[path] = content
        if not entries:
            return []
        folders = sorted(
            {a for p in entries for a in ancestors(p)}, key=lambda p: (p.count("/"), p)
        )
        if any(f in entries for f in folders):
            raise Conflict("a path is used both as a file and as a folder", code="not_a_folder")
        changes: list[Change] = []
        try:
            async with self.db.session() as s, s.begin():
                known: dict[str, tuple[int, str]] = {}
                wanted = [*folders, *entries]
                for i in range(0, len(wanted), 500):
                    rows = await s.execute(
                        select(WorkspaceItem.full_path, WorkspaceItem.id, WorkspaceItem.type).where(
                            WorkspaceItem.session_id == ref.session_id,
                            WorkspaceItem.full_path.in_(wanted[i : i + 500]),
                        )
                    )
                    known.update({r[0]: (r[1], r[2]) for r in rows})
                taken = [p for p in entries if p in known]
                if taken:
                    raise Conflict(
                        f"{taken[0]!r} already exists", code="already_exists", path=taken[0]
                    )
                blocked = [f for f in folders if f in known and known[f][1] != "folder"]
                if blocked:
                    raise Conflict(f"{blocked[0]!r} is a file, not a folder", code="not_a_folder")
                missing = [f for f in folders if f not in known]
                await self._check_quota(
                    s, ref, len(missing) + len(entries), sum(len(c) for c in entries.values())
                )
                ids = {f: known[f][0] for f in folders if f in known}
                for f in missing:  # outermost first: each parent's id exists before its children
                    folder = WorkspaceItem(
                        session_id=ref.session_id,
                        parent_id=ids.get(parent_of(f) or ""),
                        name=name_of(f),
                        type="folder",
                        size_bytes=0,
                        full_path=f,
                        version=1,
                    )
                    s.add(folder)
                    await s.flush()
                    ids[f] = folder.id
                    changes.append(Change("mkdir", f, "folder", version=1, source=source))
                now = utcnow()
                meta = {p: (content_hash(c), looks_binary(c)) for p, c in entries.items()}
                await s.execute(
                    insert(WorkspaceItem),
                    [
                        {
                            "session_id": ref.session_id,
                            "parent_id": ids.get(parent_of(p) or ""),
                            "name": name_of(p),
                            "type": "file",
                            "content": c,
                            "is_binary": meta[p][1],
                            "size_bytes": len(c),
                            "content_hash": meta[p][0],
                            "full_path": p,
                            "version": 1,
                            "created_at": now,
                            "updated_at": now,
                        }
                        for p, c in entries.items()
                    ],
                )
                history = self._history
                if history is not None:
                    await history.on_create_many(
                        s, ref, {p: (meta[p][0], c) for p, c in entries.items()}, source
                    )
        except IntegrityError as exc:
            raise Conflict("a file was created concurrently", code="already_exists") from exc
        infos = [
            ItemInfo(p, name_of(p), "file", len(c), 1, meta[p][0], meta[p][1], now)
            for p, c in entries.items()
        ]
        changes.extend(
            Change("write", i.path, "file", version=1, size=i.size, source=source) for i in infos
        )
        await self._notify(ref, changes)
        return infos

    async def make_folder(
        self, ref: WorkspaceRef, raw_path: str, *, source: str = "api"
    ) -> tuple[ItemInfo, bool]:
        """mkdir -p: returns (info, created)."""
        path = self.normalize(raw_path)
        try:
            async with self.db.session() as s, s.begin():
                chain = [*ancestors(path), path]
                have = (
                    await s.execute(
                        select(func.count(WorkspaceItem.id)).where(
                            WorkspaceItem.session_id == ref.session_id,
                            WorkspaceItem.full_path.in_(chain),
                        )
                    )
                ).scalar_one()
                await self._check_quota(s, ref, len(chain) - int(have), 0)
                _, made = await self._ensure_folders(s, ref, chain)
                row = (
                    await s.execute(
                        select(*INFO_COLUMNS).where(
                            WorkspaceItem.session_id == ref.session_id,
                            WorkspaceItem.full_path == path,
                        )
                    )
                ).one()
        except IntegrityError as exc:
            raise Conflict(
                f"{path!r} was created concurrently", code="already_exists", path=path
            ) from exc
        if made:
            await self._notify(
                ref, [Change("mkdir", p, "folder", version=1, source=source) for p in made]
            )
        return item_info(row), bool(made)

    async def delete(self, ref: WorkspaceRef, raw_path: str, *, source: str = "api") -> ItemInfo:
        """Delete a file, or a folder with everything below it (to the trash, history on)."""
        return await retrying(lambda: self._delete(ref, raw_path, source=source))

    async def _delete(self, ref: WorkspaceRef, raw_path: str, *, source: str) -> ItemInfo:
        path = self.normalize(raw_path)
        async with self.db.session() as s, s.begin():
            row = (
                await s.execute(
                    select(*INFO_COLUMNS).where(
                        WorkspaceItem.session_id == ref.session_id, WorkspaceItem.full_path == path
                    )
                )
            ).first()
            if row is None:
                raise NotFound(f"no file or folder at {path!r}", code="file_not_found", path=path)
            info = item_info(row)
            if self.recorder is not None:
                await self.recorder.on_delete(s, ref, path, info.type, source)
            if info.type == "folder":
                lo, hi = subtree_bounds(path)
                await s.execute(
                    delete(WorkspaceItem).where(
                        WorkspaceItem.session_id == ref.session_id,
                        WorkspaceItem.full_path >= lo,
                        WorkspaceItem.full_path < hi,
                    )
                )
            await s.execute(
                delete(WorkspaceItem).where(
                    WorkspaceItem.session_id == ref.session_id, WorkspaceItem.full_path == path
                )
            )
        await self._notify(ref, [Change("delete", path, info.type, source=source)])
        return info

    async def move(
        self, ref: WorkspaceRef, raw_src: str, raw_dst: str, *, source: str = "api"
    ) -> ItemInfo:
        """Rename/move a file or a folder (with its subtree) to a path that does not exist yet."""
        src = self.normalize(raw_src)
        dst = self.normalize(raw_dst)
        if src == dst:
            info, _ = await self.read(ref, src)
            return info
        if is_inside(dst, src):
            raise InvalidInput(f"cannot move {src!r} into itself ({dst!r})", code="move_into_self")
        try:
            async with self.db.session() as s, s.begin():
                cur = (
                    await s.execute(
                        select(WorkspaceItem.id, WorkspaceItem.type).where(
                            WorkspaceItem.session_id == ref.session_id,
                            WorkspaceItem.full_path == src,
                        )
                    )
                ).first()
                if cur is None:
                    raise NotFound(f"no file or folder at {src!r}", code="file_not_found", path=src)
                taken = await s.scalar(
                    select(WorkspaceItem.id).where(
                        WorkspaceItem.session_id == ref.session_id, WorkspaceItem.full_path == dst
                    )
                )
                if taken is not None:
                    raise Conflict(f"{dst!r} already exists", code="already_exists", path=dst)
                folder_paths = ancestors(dst)
                await self._check_quota(s, ref, len(folder_paths), 0)
                parent_id, made = await self._ensure_folders(s, ref, folder_paths)
                if cur[1] == "folder":
                    lo, hi = subtree_bounds(src)
                    await s.execute(
                        update(WorkspaceItem)
                        .where(
                            WorkspaceItem.session_id == ref.session_id,
                            WorkspaceItem.full_path >= lo,
                            WorkspaceItem.full_path < hi,
                        )
                        .values(
                            full_path=literal(dst)
                            + func.substr(WorkspaceItem.full_path, len(src) + 1)
                        )
                        .execution_options(synchronize_session=False)
                    )
                await s.execute(
                    update(WorkspaceItem)
                    .where(WorkspaceItem.id == cur[0])
                    .values(
                        full_path=dst,
                        name=name_of(dst),
                        parent_id=parent_id,
                        version=WorkspaceItem.version + 1,
                        updated_at=utcnow(),
                    )
                    .execution_options(synchronize_session=False)
                )
                row = (
                    await s.execute(select(*INFO_COLUMNS).where(WorkspaceItem.id == cur[0]))
                ).one()
                if self.recorder is not None:
                    await self.recorder.on_move(s, ref, src, dst)
        except IntegrityError as exc:
            raise Conflict(f"{dst!r} already exists", code="already_exists", path=dst) from exc
        info = item_info(row)
        changes = [Change("mkdir", p, "folder", version=1, source=source) for p in made]
        changes.append(
            Change("move", src, info.type, to_path=dst, version=info.version, source=source)
        )
        await self._notify(ref, changes)
        return info

    async def ensure_default(self, ref: WorkspaceRef) -> bool:
        """Create ``main.py`` when the workspace is empty; True when it did."""
        count, _ = await self.stats(ref)
        if count:
            return False
        try:
            await self.save_file(ref, DEFAULT_FILE, DEFAULT_CONTENT, base_version=0)
        except Conflict:
            return False
        return True
