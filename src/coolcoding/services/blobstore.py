"""Content-addressed storage of file contents for history, snapshots and the trash.

A blob is one distinct content, keyed by its SHA-256. It is stored ``raw``, ``zlib`` (the
compressed content) or ``delta``: zlib of a line-level copy/insert delta against ``base_hash``,
chains at most ``history_delta_max_depth`` long, so 1,000 one-line edits of a 100 KB file cost
a few hundred bytes each.

A ``pending`` row (key ``p<version id>``, never a hex digest) is the raw content of one file
version written by a save with history on (``history_deferred_save``): the version's own row, so
a save locks no row another save shares; ``base_hash`` then holds the content's SHA-256, and
``history_compact`` moves the version onto the shared blob (delta, counts) once it is closed.

Reference counting, in the transaction that adds or drops a reference: ``refs`` counts file
versions, snapshot files and deltas based on the blob. ``release`` decrements and deletes a blob
whose count reached 0 (then releases its base), holding the row lock, so a concurrent writer
either incremented first (the blob stays) or finds it gone and stores its content again
(``put`` is an upsert carrying the content). ``verify`` recounts everything (mark) and is what
the tests check after concurrent saves and purges.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from coolcoding.db.models import UtcDateTime, utcnow
from coolcoding.errors import NotFound

T = TypeVar("T")
P = ParamSpec("P")

# --- delta codec ---------------------------------------------------------------------------

_COPY = 0x43  # 'C' offset length
_INSERT = 0x49  # 'I' length bytes
_MAX_CANDIDATES = 8


def _varint(n: int, out: bytearray) -> None:
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, pos
        shift += 7


def make_delta(base: bytes, new: bytes) -> bytes:
    """A copy/insert delta turning ``base`` into ``new``, at line granularity (greedy: each new
    line starts the longest run of equal lines among its first few occurrences in ``base``,
    preferring the continuation of the previous copy)."""
    base_lines = base.splitlines(keepends=True)
    offsets = [0]
    for line in base_lines:
        offsets.append(offsets[-1] + len(line))
    index: dict[bytes, list[int]] = {}
    for j, line in enumerate(base_lines):
        cands = index.setdefault(line, [])
        if len(cands) < _MAX_CANDIDATES:
            cands.append(j)
    new_lines = new.splitlines(keepends=True)
    out = bytearray()
    pending: list[bytes] = []
    copy_start = copy_end = -1  # the pending copy, as a byte range of base

    def flush_copy() -> None:
        nonlocal copy_start, copy_end
        if copy_start >= 0:
            out.append(_COPY)
            _varint(copy_start, out)
            _varint(copy_end - copy_start, out)
            copy_start = copy_end = -1

    def flush_insert() -> None:
        if pending:
            data = b"".join(pending)
            pending.clear()
            out.append(_INSERT)
            _varint(len(data), out)
            out.extend(data)

    i, n, nb, nxt = 0, len(new_lines), len(base_lines), -1
    while i < n:
        found = index.get(new_lines[i])
        if not found:
            flush_copy()
            pending.append(new_lines[i])
            i += 1
            nxt = -1
            continue
        best_j, best_len = -1, 0
        for j in ([nxt] if 0 <= nxt < nb and base_lines[nxt] == new_lines[i] else []) + found:
            k = 0
            while i + k < n and j + k < nb and base_lines[j + k] == new_lines[i + k]:
                k += 1
            if k > best_len:
                best_j, best_len = j, k
            if k > 16:
                break
        flush_insert()
        lo, hi = offsets[best_j], offsets[best_j + best_len]
        if copy_start >= 0 and copy_end == lo:
            copy_end = hi
        else:
            flush_copy()
            copy_start, copy_end = lo, hi
        i += best_len
        nxt = best_j + best_len
    flush_copy()
    flush_insert()
    return bytes(out)


def apply_delta(base: bytes, delta: bytes) -> bytes:
    parts: list[bytes] = []
    pos, end = 0, len(delta)
    while pos < end:
        op = delta[pos]
        pos += 1
        if op == _COPY:
            start, pos = _read_varint(delta, pos)
            length, pos = _read_varint(delta, pos)
            parts.append(base[start : start + length])
        elif op == _INSERT:
            length, pos = _read_varint(delta, pos)
            parts.append(delta[pos : pos + length])
            pos += length
        else:
            raise ValueError(f"corrupt delta: op {op:#x} at {pos - 1}")
    return b"".join(parts)


@dataclass(frozen=True)
class Encoded:
    encoding: str
    base_hash: str | None
    data: bytes


def encode(content: bytes, base: tuple[str, bytes] | None = None) -> Encoded:
    """The smallest cheap encoding of ``content``: a delta against ``base`` when it is less
    than half the content, else zlib when that helps, else raw."""
    if base is not None and content:
        delta = make_delta(base[1], content)
        if len(delta) * 2 < len(content):
            return Encoded("delta", base[0], zlib.compress(delta, 6))
    packed = zlib.compress(content, 6)
    if len(packed) < len(content):
        return Encoded("zlib", None, packed)
    return Encoded("raw", None, content)


def tsql(sql: str, *times: str, columns: Sequence[str] = ()) -> TextClause:
    """``text(sql)`` whose parameters ``times`` and result ``columns`` are UTC timestamps
    (SQLite stores them as text in SQLAlchemy's format; raw strings would not compare)."""
    clause = text(sql).bindparams(*(bindparam(n, type_=UtcDateTime()) for n in times))
    if columns:
        return clause.columns(**{c: UtcDateTime() for c in columns})  # type: ignore[return-value]
    return clause


# --- the store -----------------------------------------------------------------------------

_UPSERT = tsql(
    "INSERT INTO content_blobs (hash, encoding, base_hash, depth, size, stored_size, refs, data,"
    " created_at) VALUES (:hash, :encoding, :base_hash, :depth, :size, :stored, :n, :data, :now)"
    " ON CONFLICT (hash) DO UPDATE SET refs = content_blobs.refs + excluded.refs RETURNING refs",
    "now",
)
_ADD_REF = text("UPDATE content_blobs SET refs = refs + :n WHERE hash = :hash RETURNING depth")
PENDING = "pending"
# A blob's base, i.e. what a delta references (a pending row's base_hash is its digest instead).
_BASE = "CASE WHEN encoding = 'delta' THEN base_hash END"
_DROP_REF = text(
    f"UPDATE content_blobs SET refs = refs - :n WHERE hash = :hash RETURNING refs, {_BASE}"  # noqa: S608 (constant SQL fragments)
)
_DELETE_UNUSED = text("DELETE FROM content_blobs WHERE hash = :hash AND refs <= 0")
_DELETE_LAST = text(
    f"DELETE FROM content_blobs WHERE hash = :hash AND refs <= :n RETURNING {_BASE}"  # noqa: S608 (constant SQL fragments)
)
_CHAIN = text(
    "WITH RECURSIVE chain(hash, encoding, base_hash, data, lvl) AS ("
    " SELECT hash, encoding, base_hash, data, 0 FROM content_blobs WHERE hash = :hash"
    " UNION ALL SELECT b.hash, b.encoding, b.base_hash, b.data, c.lvl + 1"
    " FROM content_blobs b JOIN chain c ON b.hash = c.base_hash"
    " WHERE c.encoding = 'delta' AND c.lvl < 1000)"
    " SELECT hash, encoding, data FROM chain ORDER BY lvl DESC"
)


async def exists(s: AsyncSession, digest: str) -> bool:
    row = await s.execute(text("SELECT 1 FROM content_blobs WHERE hash = :h"), {"h": digest})
    return row.first() is not None


async def put(
    s: AsyncSession,
    digest: str,
    content: bytes,
    *,
    base: tuple[str, bytes] | None = None,
    max_depth: int = 32,
    refs: int = 1,
) -> None:
    """Add ``refs`` references to the blob of ``content`` (stored if new; a delta against
    ``base`` = (hash, content) when that base still exists and its chain is short enough)."""
    # No look-up first: the upsert below adds the references to an existing blob (one round trip
    # on the hot path; the encoding is then wasted work, a rare case: a content seen before).
    depth = 0
    if base is not None and base[0] != digest:
        # Reference the base first: once counted it cannot vanish under the delta.
        row = (await s.execute(_ADD_REF, {"hash": base[0], "n": 1})).first()
        if row is None or int(row[0]) + 1 > max_depth:
            if row is not None:
                await release(s, [base[0]])
            base = None
        else:
            depth = int(row[0]) + 1
    else:
        base = None
    enc = encode(content, base)
    if enc.encoding != "delta" and base is not None:
        await release(s, [base[0]])
        depth = 0
    refs_now = (
        await s.execute(
            _UPSERT,
            {
                "hash": digest,
                "encoding": enc.encoding,
                "base_hash": enc.base_hash,
                "depth": depth,
                "size": len(content),
                "stored": len(enc.data),
                "n": refs,
                "data": enc.data,
                "now": utcnow(),
            },
        )
    ).scalar_one()
    if int(refs_now) != refs and enc.base_hash is not None:
        # Stored concurrently by another transaction: our delta was not kept, nor its base ref.
        await release(s, [enc.base_hash])


_UPSERT_MANY = tsql(
    "INSERT INTO content_blobs (hash, encoding, base_hash, depth, size, stored_size, refs, data,"
    " created_at) VALUES (:hash, :encoding, NULL, 0, :size, :stored, :n, :data, :now)"
    " ON CONFLICT (hash) DO UPDATE SET refs = content_blobs.refs + excluded.refs",
    "now",
)


async def put_many(s: AsyncSession, contents: dict[str, tuple[bytes, int]]) -> None:
    """Add ``n`` references to the blob of each content (hash -> (content, n)), in one
    statement: for bulk arrivals (no delta: they are new files)."""
    if not contents:
        return
    now = utcnow()
    rows = []
    for digest, (content, n) in sorted(contents.items()):  # one lock order
        enc = encode(content)
        rows.append(
            {
                "hash": digest,
                "encoding": enc.encoding,
                "size": len(content),
                "stored": len(enc.data),
                "n": n,
                "data": enc.data,
                "now": now,
            }
        )
    await s.execute(_UPSERT_MANY, rows)


async def release(
    s: AsyncSession | AsyncConnection, hashes: Iterable[str | None], n: int = 1
) -> int:
    """Drop one reference (``n``) from each blob; delete those left unreferenced, then their
    bases. Returns how many blobs were deleted.

    ``s`` may be a connection in autocommit: each statement is then its own transaction, and
    still safe (a blob is deleted only by a statement that sees it unreferenced under its row
    lock; an interruption between statements leaves a reference count too high, never a loss)."""
    todo = [(h, n) for h in hashes if h]
    deleted = 0
    while todo:
        digest, count = todo.pop()
        # Usually the last reference: one statement deletes it (the row lock makes a concurrent
        # ``put`` wait, then store the content again).
        gone = (await s.execute(_DELETE_LAST, {"hash": digest, "n": count})).first()
        if gone is not None:
            deleted += 1
            if gone[0]:
                todo.append((str(gone[0]), 1))
            continue
        row = (await s.execute(_DROP_REF, {"hash": digest, "n": count})).first()
        if row is None or int(row[0]) > 0:
            continue
        await s.execute(_DELETE_UNUSED, {"hash": digest})
        deleted += 1
        if row[1]:
            todo.append((str(row[1]), 1))
    return deleted


async def sweep(s: AsyncSession, limit: int = 1000) -> int:
    """Delete blobs left without references (a crash between a save's statement and its
    bookkeeping leaves them); each is re-checked under its row lock, so a blob referenced again
    meanwhile stays. Returns how many were deleted."""
    rows = (
        await s.execute(
            text("SELECT hash FROM content_blobs WHERE refs <= 0 ORDER BY hash LIMIT :n"),
            {"n": limit},
        )
    ).all()
    return await release(s, [str(r[0]) for r in rows], 0)


async def read(s: AsyncSession, digest: str) -> bytes:
    """The content of a blob (its delta chain fetched in one query)."""
    rows = (await s.execute(_CHAIN, {"hash": digest})).all()
    if not rows or rows[-1][0] != digest:
        raise NotFound("this content is no longer stored", code="content_missing")
    content = b""
    for _hash, encoding, data in rows:
        if encoding in ("raw", PENDING):
            content = bytes(data)
        elif encoding == "zlib":
            content = zlib.decompress(data)
        else:
            content = apply_delta(content, zlib.decompress(data))
    return content


async def read_many(s: AsyncSession, hashes: Sequence[str]) -> dict[str, bytes]:
    return {h: await read(s, h) for h in dict.fromkeys(hashes)}


# Every reference, counted from scratch: what ``refs`` must equal.
_EXPECTED = text(
    "SELECT h, SUM(n) AS n FROM ("
    " SELECT blob_hash AS h, COUNT(*) AS n FROM file_versions"
    "  WHERE blob_hash IS NOT NULL GROUP BY blob_hash"
    " UNION ALL SELECT blob_hash, COUNT(*) FROM snapshot_files"
    "  WHERE blob_hash IS NOT NULL GROUP BY blob_hash"
    " UNION ALL SELECT base_hash, COUNT(*) FROM content_blobs"
    "  WHERE base_hash IS NOT NULL AND encoding = 'delta' GROUP BY base_hash) r GROUP BY h"
)


async def verify(s: AsyncSession) -> list[str]:
    """Problems of the store: a referenced blob missing, or a count that differs from the
    references (empty when consistent)."""
    # One statement (one snapshot): the background compaction may move a version between two.
    rows = (
        await s.execute(
            text(
                f"SELECT 0, h, n FROM ({_EXPECTED.text}) e"  # noqa: S608 (constant SQL fragments)
                " UNION ALL SELECT 1, hash, refs FROM content_blobs"
            )
        )
    ).all()
    expected = {str(h): int(n) for k, h, n in rows if k == 0}
    actual = {str(h): int(n) for k, h, n in rows if k == 1}
    problems = [
        f"missing blob {h} ({n} references)" for h, n in expected.items() if h not in actual
    ]
    problems += [
        f"blob {h}: refs {r}, references {expected.get(h, 0)}"
        for h, r in actual.items()
        if r != expected.get(h, 0)
    ]
    return problems


# PostgreSQL: deadlock detected, serialization failure. Blob rows are locked in whatever order
# the operations reach them; the loser of a deadlock is rolled back whole and run again.
_RETRY_STATES = {"40P01", "40001"}


def is_retryable(exc: BaseException) -> bool:
    from sqlalchemy.exc import DBAPIError

    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in _RETRY_STATES


async def retrying(make: Callable[[], Awaitable[T]], attempts: int = 5) -> T:
    """Run ``make()`` (one whole transaction), again when the database rolled it back for a
    deadlock or a serialization failure."""
    import asyncio
    import random

    for attempt in range(attempts):
        try:
            return await make()
        except Exception as exc:
            if attempt == attempts - 1 or not is_retryable(exc):
                raise
            await asyncio.sleep(random.uniform(0, 0.01 * (attempt + 1)))
    raise AssertionError("unreachable")


def retried(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """A method whose every call is ``retrying``: it must be one whole transaction."""
    import functools

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return await retrying(lambda: fn(*args, **kwargs))

    return wrapper
