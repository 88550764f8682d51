"""The continuation cursor of a paged search (``next`` in an answer, ``after=`` in the next
request): where the previous page stopped, bound to the workspace and the query it was made for.

A cursor is ``base64url(JSON [path, line, common]) "." base64url(digest)``. ``line`` is the last
line the page returned in ``path`` (the next page continues in that file from the line after), or
0 when that file has no more matching lines (the next page starts after it); ``common``: the
index found the query's literal in more than ``search_max_files`` files, so the next page walks
without asking it again (either way the answer is exact: this only saves a statement). The digest (SHA-256 of the
workspace, every query parameter and the payload) refuses a damaged cursor and one made for
another query or workspace. It is a checksum, not a signature: a cursor only names a position in
a workspace its caller can already search, so a forged one with a valid digest is harmless once
its fields are checked (a path that could not be stored: NUL, a lone surrogate, too long; a line
out of range), which happens before the path reaches the database (400, never a driver error).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Protocol

from coolcoding.errors import InvalidInput

# Longest cursor accepted: a path of max_path_length (1,024 bytes by default) in base64 is ~1,400
# characters; the route's ``after`` is bounded by the same number (a 422 before any decoding).
MAX_CURSOR_CHARS = 4096
# Line numbers a cursor may name (a file of max_file_bytes has fewer lines than bytes).
MAX_LINE = 2**31 - 1
_DIGEST_BYTES = 16


class CursorQuery(Protocol):
    """What a cursor is bound to (services/search.py ``SearchQuery``)."""

    @property
    def query(self) -> str: ...
    @property
    def regex(self) -> bool: ...
    @property
    def case_sensitive(self) -> bool: ...
    @property
    def whole_word(self) -> bool: ...
    @property
    def include(self) -> tuple[str, ...]: ...
    @property
    def exclude(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class SearchPosition:
    """The last line a page returned: ``line`` in ``path``, or all of ``path`` when ``line`` is 0;
    ``common``: the search walks the workspace (its literal is in too many files to narrow)."""

    path: str
    line: int
    common: bool = False


def _digest(session_id: int, q: CursorQuery, payload: bytes) -> bytes:
    binding = json.dumps(
        [
            "coolcoding-search-cursor-1",
            session_id,
            q.query,
            q.regex,
            q.case_sensitive,
            q.whole_word,
            list(q.include),
            list(q.exclude),
        ]
    ).encode()
    return hashlib.sha256(binding + b"\0" + payload).digest()[:_DIGEST_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_cursor(session_id: int, q: CursorQuery, pos: SearchPosition) -> str:
    payload = json.dumps([pos.path, pos.line, pos.common], ensure_ascii=False).encode()
    return f"{_b64(payload)}.{_b64(_digest(session_id, q, payload))}"


def _refuse(why: str) -> InvalidInput:
    return InvalidInput(
        f"invalid search cursor ({why}): start the search again without 'after'",
        code="invalid_cursor",
    )


def decode_cursor(raw: str, session_id: int, q: CursorQuery, max_path_bytes: int) -> SearchPosition:
    """The position ``raw`` names, or ``InvalidInput`` (``invalid_cursor``) when it is not a
    cursor of this query in this workspace or names a position no stored file can have."""
    if len(raw) > MAX_CURSOR_CHARS or raw.count(".") != 1:
        raise _refuse("malformed")
    head, tail = raw.split(".")
    try:
        if not head.isascii() or not tail.isascii():
            raise ValueError("not base64")
        payload, digest = _unb64(head), _unb64(tail)
    except (ValueError, binascii.Error) as exc:
        raise _refuse("malformed") from exc
    if not hmac.compare_digest(digest, _digest(session_id, q, payload)):
        raise _refuse("made for another query or workspace, or altered")
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise _refuse("malformed") from exc
    if not (
        isinstance(value, list)
        and len(value) == 3
        and isinstance(value[0], str)
        and type(value[1]) is int
        and type(value[2]) is bool
    ):
        raise _refuse("malformed")
    path, line, common = value
    if not 0 <= line <= MAX_LINE:
        raise _refuse("line out of range")
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate: no database can hold it
        raise _refuse("path is not UTF-8") from exc
    if not path or "\x00" in path or size > max_path_bytes:
        raise _refuse("not a workspace path")
    return SearchPosition(path, line, common)
