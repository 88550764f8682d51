"""Where a document's base (its saved state, see ``document.Base``) and its saver live.

With Redis (several replicas): the base is one key per document, so a replica that opens a
document others already have starts from the same lineage of items (never a second copy of the
text), and a saver lease (``SET NX PX``) names the one replica that saves it. Without Redis
(one replica): both are in this process.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from coolcoding.collab.document import Base

_PREFIX = "cc:collab"
# Renew the saver lease only if this replica still holds it.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def _encode(base: Base) -> str:
    return json.dumps(
        {
            "version": base.version,
            "text": base.text,
            "state": base64.b64encode(base.state).decode(),
            "epoch": base.epoch,
        }
    )


def _decode(raw: Any) -> Base | None:
    try:
        d = json.loads(raw)
        return Base(
            version=int(d["version"]),
            text=str(d["text"]),
            state=base64.b64decode(d["state"]),
            epoch=str(d["epoch"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


class DocStore:
    def __init__(self, redis: Any, replica_id: str, ttl_s: int, lease_ms: int) -> None:
        self.redis = redis
        self.replica_id = replica_id
        self.ttl_s = ttl_s
        self.lease_ms = lease_ms
        self._bases: dict[str, Base] = {}

    @staticmethod
    def _key(session_uuid: str, path: str) -> str:
        return f"{_PREFIX}:base:{session_uuid}:{path}"

    @staticmethod
    def _pending_key(session_uuid: str, path: str) -> str:
        return f"{_PREFIX}:pending:{session_uuid}:{path}"

    @staticmethod
    def _lease_key(session_uuid: str, path: str) -> str:
        return f"{_PREFIX}:saver:{session_uuid}:{path}"

    async def get_or_create(self, session_uuid: str, path: str, fresh: Base) -> Base:
        """The stored base, or ``fresh`` stored as the first one (whoever stores first wins)."""
        key = self._key(session_uuid, path)
        if self.redis is None:
            return self._bases.setdefault(key, fresh)
        if await self.redis.set(key, _encode(fresh), nx=True, ex=self.ttl_s):
            return fresh
        found = _decode(await self.redis.get(key))
        if found is None:  # expired in between, or garbage: ours becomes the base
            await self.redis.set(key, _encode(fresh), ex=self.ttl_s)
            return fresh
        return found

    async def get(self, session_uuid: str, path: str) -> Base | None:
        key = self._key(session_uuid, path)
        if self.redis is None:
            return self._bases.get(key)
        return _decode(await self.redis.get(key))

    async def put(self, session_uuid: str, path: str, base: Base) -> None:
        key = self._key(session_uuid, path)
        if self.redis is None:
            self._bases[key] = base
        else:
            await self.redis.set(key, _encode(base), ex=self.ttl_s)

    async def put_pending(self, session_uuid: str, path: str, base: Base) -> None:
        """What the saver is about to save: ``text`` and its ``state`` over the base of
        ``version``. A saver killed after the DB took it but before ``put`` recorded the new base
        leaves this behind, so the next saver knows that DB version is the document's own save
        (not a change from outside to merge, which would add the saved text a second time)."""
        key = self._pending_key(session_uuid, path)
        if self.redis is None:
            self._bases[key] = base
        else:
            await self.redis.set(key, _encode(base), ex=self.ttl_s)

    async def get_pending(self, session_uuid: str, path: str) -> Base | None:
        key = self._pending_key(session_uuid, path)
        if self.redis is None:
            return self._bases.get(key)
        return _decode(await self.redis.get(key))

    async def forget(self, session_uuid: str, path: str) -> None:
        """Drop the base (the file was deleted, or, without Redis, nobody edits it any more)."""
        keys = (self._key(session_uuid, path), self._pending_key(session_uuid, path))
        if self.redis is None:
            for key in keys:
                self._bases.pop(key, None)
        else:
            await self.redis.delete(*keys)

    async def hold_saver(self, session_uuid: str, path: str) -> bool:
        """Take or renew the saver lease; whether this replica holds it."""
        if self.redis is None:
            return True
        key = self._lease_key(session_uuid, path)
        if await self.redis.eval(_RENEW, 1, key, self.replica_id, self.lease_ms):
            return True
        return bool(await self.redis.set(key, self.replica_id, nx=True, px=self.lease_ms))

    async def release_saver(self, session_uuid: str, path: str) -> None:
        if self.redis is not None:
            await self.redis.eval(_RELEASE, 1, self._lease_key(session_uuid, path), self.replica_id)
