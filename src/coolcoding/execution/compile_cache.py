"""A bounded in-memory cache of compiled artifacts (seed 002's ``compilation:${hash}`` cache).

The key covers everything the compiler sees (language, compiler version, command, every file of
the job) plus a caller-chosen scope (the user): a user never gets another user's build, and
cannot learn from timing whether someone else compiled the same source. Values are the files the
compile step produced, so a cache hit skips the compiler and writes them into the new sandbox.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence


def cache_key(
    scope: str,
    language_id: str,
    version: str | None,
    command: Sequence[str],
    files: Mapping[str, bytes],
) -> str:
    h = hashlib.sha256()
    for part in (scope, language_id, version or "", "\0".join(command)):
        h.update(part.encode())
        h.update(b"\0\1")
    for path in sorted(files):
        h.update(path.encode())
        h.update(b"\0\2")
        h.update(hashlib.sha256(files[path]).digest())
    return h.hexdigest()


class CompileCache:
    """LRU by total bytes; entries larger than a quarter of the budget are not kept."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, dict[str, bytes]] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _size(files: Mapping[str, bytes]) -> int:
        return sum(len(v) + len(k) for k, v in files.items())

    def get(self, key: str) -> dict[str, bytes] | None:
        files = self._entries.get(key)
        if files is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return files

    def put(self, key: str, files: Mapping[str, bytes]) -> None:
        size = self._size(files)
        if size > self.max_bytes // 4 or key in self._entries:
            return
        self._entries[key] = dict(files)
        self._bytes += size
        while self._bytes > self.max_bytes and self._entries:
            _, old = self._entries.popitem(last=False)
            self._bytes -= self._size(old)

    def __len__(self) -> int:
        return len(self._entries)
