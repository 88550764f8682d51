"""Zip archives of a workspace: export (streamed, constant memory) and import (validated before
anything is written).

Import refuses what an archive can use to escape or exhaust the workspace: entries with ``..``,
absolute or drive paths and backslashes (path traversal), symlink entries, encrypted entries,
more entries than ``max_zip_entries``, and zip bombs: the declared sizes are checked first, then
every entry is decompressed once, counting the actual bytes (a lying header cannot get more
than its limit out), before a second pass writes the files in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import stat
import tempfile
import time
import zipfile
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import IO

from sqlalchemy import select

from coolcoding.db.models import WorkspaceItem
from coolcoding.errors import Conflict, DomainError, InvalidInput, TooLarge
from coolcoding.services.workspace import WorkspaceService
from coolcoding.services.workspace_types import WorkspaceRef, looks_binary
from coolcoding.settings import Settings

CHUNK = 256 * 1024
BATCH_BYTES = 8 * 1024 * 1024
# Items per query of an export (5 MiB each at most), and pages read ahead of the compression.
EXPORT_PAGE = 16
EXPORT_AHEAD = 2
# Metadata some archivers add; never part of a project.
JUNK = re.compile(r"^(?:__MACOSX/|.*(?:^|/)\.DS_Store$)")


class _ChunkSink:
    """A write-only file for ``zipfile``: collects what it writes until taken (no ``tell``,
    so zipfile writes data descriptors and never seeks)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes, /) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def take(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks.clear()
        return out


@dataclass(frozen=True)
class ImportResult:
    files: int
    folders: int
    bytes: int


class ArchiveService:
    def __init__(self, workspace: WorkspaceService, settings: Settings) -> None:
        self.workspace = workspace
        self.settings = settings
        # Run once an import is accepted, before anything is written (the automatic snapshot
        # of file history: an import is a restore point, services/snapshots.py).
        self.before_import: list[Callable[[WorkspaceRef, str], Awaitable[object]]] = []

    # --- export ----------------------------------------------------------------------------

    async def export_zip(self, ref: WorkspaceRef) -> AsyncIterator[bytes]:
        """The workspace as a zip, page by page, in a pipeline: while a worker thread
        compresses one page of files (zlib and crc32 release the GIL), the event loop reads the
        next page from the database and sends the previous one's bytes. At most
        ``EXPORT_AHEAD + 2`` pages of files are in memory."""
        sink = _ChunkSink()
        level = self.settings.zip_export_compress_level
        stamp = time.localtime()[:6]
        zf = zipfile.ZipFile(sink, "w", allowZip64=True)
        pages: asyncio.Queue[list[tuple[str, str, bytes]] | None] = asyncio.Queue(EXPORT_AHEAD)

        async def read() -> None:
            try:
                batch: list[tuple[str, str, bytes]] = []
                async for row in self._rows(ref):
                    batch.append(row)
                    if len(batch) >= EXPORT_PAGE:
                        await pages.put(batch)
                        batch = []
                await pages.put(batch)
            finally:
                await pages.put(None)  # the end, or an error (raised by ``await reader``)

        def write(batch: list[tuple[str, str, bytes]]) -> bytes:
            for path, typ, content in batch:
                if typ == "folder":
                    info = zipfile.ZipInfo(path + "/", date_time=stamp)
                    info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
                    zf.writestr(info, b"")
                    continue
                info = zipfile.ZipInfo(path, date_time=stamp)
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                if level and not looks_binary(content[:8192]):
                    zf.writestr(info, content, zipfile.ZIP_DEFLATED, level)
                else:
                    zf.writestr(info, content)
            return sink.take()

        reader = asyncio.create_task(read())
        try:
            while (batch := await pages.get()) is not None:
                # One thread at a time touches ``zf`` (each write is awaited before the next).
                chunk = await asyncio.to_thread(write, batch)
                if chunk:
                    yield chunk
            await reader  # its errors, if any
            zf.close()
            yield sink.take()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _rows(self, ref: WorkspaceRef) -> AsyncIterator[tuple[str, str, bytes]]:
        """Every item as (path, type, content) in path order, read in pages by keyset (each a
        short query on the (session_id, full_path) index): a streamed cursor of aiosqlite holds
        every row it has read, so a 200 MiB workspace cost 200 MiB of server memory."""
        last = ""
        while True:
            async with self.workspace.db.read() as conn:
                page = (
                    await conn.execute(
                        select(WorkspaceItem.full_path, WorkspaceItem.type, WorkspaceItem.content)
                        .where(
                            WorkspaceItem.session_id == ref.session_id,
                            WorkspaceItem.full_path > last,
                        )
                        .order_by(WorkspaceItem.full_path)
                        .limit(EXPORT_PAGE)
                    )
                ).all()
            for path, typ, content in page:
                yield path, typ, content or b""
            if len(page) < EXPORT_PAGE:
                return
            last = page[-1][0]

    # --- import ----------------------------------------------------------------------------

    async def spool(self, body: AsyncIterator[bytes]) -> IO[bytes]:
        """The upload in a temporary file (a zip's directory is at its end), at most
        ``max_zip_upload_bytes``."""
        limit = self.settings.max_zip_upload_bytes
        f = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, who closes it
        size = 0
        try:
            async for chunk in body:
                size += len(chunk)
                if size > limit:
                    raise TooLarge(
                        f"the archive is larger than {limit} bytes",
                        code="zip_too_large",
                        limit_bytes=limit,
                    )
                f.write(chunk)
        except BaseException:
            f.close()
            raise
        f.seek(0)
        return f

    async def import_zip(self, ref: WorkspaceRef, archive: IO[bytes]) -> ImportResult:
        """Add the archive's files to the workspace; nothing is written unless every entry is
        acceptable and no path exists already (409)."""
        entries, folders = await asyncio.to_thread(self._validate, archive)
        existing = {i.path: i.type for i in await self.workspace.list_items(ref)}
        _, used = await self.workspace.stats(ref)
        for path, _name, _size in entries:
            if path in existing:
                raise Conflict(f"{path!r} already exists", code="already_exists", path=path)
        total = sum(size for _, _, size in entries)
        if used + total > self.settings.max_workspace_bytes:
            raise TooLarge(
                f"the archive's {total} bytes exceed the workspace quota "
                f"({self.settings.max_workspace_bytes} bytes, {used} in use)",
                code="quota_exceeded",
                limit_bytes=self.settings.max_workspace_bytes,
            )
        for hook in self.before_import if existing else ():
            await hook(ref, f"Before importing {len(entries)} files")
        written = 0
        batches = _batches(archive, entries)
        while (batch := await asyncio.to_thread(next, batches, None)) is not None:
            await self.workspace.create_files(ref, batch, source="import")
            written += sum(len(c) for _, c in batch)
        made = 0
        for folder in folders:
            if folder not in existing:
                _, created = await self.workspace.make_folder(ref, folder, source="import")
                made += int(created)
        return ImportResult(len(entries), made, written)

    def _validate(self, archive: IO[bytes]) -> tuple[list[tuple[str, str, int]], list[str]]:
        """(files as (path, entry name, size), folders) of an acceptable archive; raises otherwise."""
        try:
            zf = zipfile.ZipFile(archive)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise InvalidInput("the upload is not a zip archive", code="invalid_zip") from exc
        infos = zf.infolist()
        if len(infos) > self.settings.max_zip_entries:
            raise TooLarge(
                f"the archive has {len(infos)} entries; at most {self.settings.max_zip_entries}",
                code="zip_too_many_entries",
                limit=self.settings.max_zip_entries,
            )
        files: list[tuple[str, str, int]] = []
        folders: list[str] = []
        seen: set[str] = set()
        declared = 0
        limit_total = self.settings.max_zip_expanded_bytes
        for info in infos:
            name = info.orig_filename
            if JUNK.match(name):
                continue
            path = self._entry_path(info)
            if path in seen:
                raise InvalidInput(f"the archive has {name!r} twice", code="zip_duplicate_entry")
            seen.add(path)
            if info.is_dir():
                folders.append(path)
                continue
            if info.file_size > self.settings.max_file_bytes:
                raise TooLarge(
                    f"{path!r} is {info.file_size} bytes; the limit is "
                    f"{self.settings.max_file_bytes}",
                    code="file_too_large",
                    path=path,
                    limit_bytes=self.settings.max_file_bytes,
                )
            declared += info.file_size
            if declared > limit_total:
                raise TooLarge(
                    f"the archive expands to more than {limit_total} bytes",
                    code="zip_too_large_expanded",
                    limit_bytes=limit_total,
                )
            files.append((path, info.filename, info.file_size))
        actual = 0
        for _path, entry, _size in files:
            for chunk in _read_entry(zf, entry, self.settings.max_file_bytes):
                actual += len(chunk)
                if actual > limit_total:
                    raise TooLarge(
                        f"the archive expands to more than {limit_total} bytes",
                        code="zip_too_large_expanded",
                        limit_bytes=limit_total,
                    )
        return files, folders

    def _entry_path(self, info: zipfile.ZipInfo) -> str:
        name = info.orig_filename
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise InvalidInput(
                f"the archive entry {name!r} is a symbolic link; archives with links are refused",
                code="zip_symlink",
                entry=name,
            )
        if info.flag_bits & 0x1:
            raise InvalidInput(f"the archive entry {name!r} is encrypted", code="zip_encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise InvalidInput(
                f"the archive entry {name!r} uses an unsupported compression method",
                code="zip_unsupported",
            )
        raw = name.rstrip("/") if info.is_dir() else name
        if raw.startswith("/") or "\\" in raw or re.match(r"^[A-Za-z]:", raw):
            raise InvalidInput(
                f"the archive entry {name!r} has an absolute or non-POSIX path",
                code="zip_unsafe_path",
                entry=name,
            )
        try:
            return self.workspace.normalize(raw)
        except DomainError as exc:
            raise InvalidInput(
                f"the archive entry {name!r} has an unsafe path: {exc}",
                code="zip_unsafe_path",
                entry=name,
            ) from exc


def _read_entry(zf: zipfile.ZipFile, name: str, limit: int) -> Iterator[bytes]:
    """The entry's bytes in chunks, stopping past ``limit`` or its declared size (a header that
    understates the size) with ``TooLarge``; a corrupt entry is ``InvalidInput``."""
    info = zf.getinfo(name)
    cap = min(limit, info.file_size)
    got = 0
    try:
        with zf.open(info) as f:
            while chunk := f.read(CHUNK):
                got += len(chunk)
                if got > cap:
                    raise TooLarge(
                        f"{name!r} expands beyond its declared size", code="zip_bomb", path=name
                    )
                yield chunk
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise InvalidInput(
            f"the archive entry {name!r} is corrupt: {exc}", code="invalid_zip"
        ) from exc


def _batches(
    archive: IO[bytes], entries: list[tuple[str, str, int]]
) -> Iterator[list[tuple[str, bytes]]]:
    archive.seek(0)
    zf = zipfile.ZipFile(archive)
    batch: list[tuple[str, bytes]] = []
    size = 0
    for path, entry, declared in entries:
        content = b"".join(_read_entry(zf, entry, declared))
        batch.append((path, content))
        size += len(content)
        if size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch
