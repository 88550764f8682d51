"""Workspace event bus: per-session fan-out to connected browsers.

In-process queues always; with Redis configured, events are also published on a Redis channel so
that every API replica's subscribers see them (a replica ignores its own messages by origin id).
Replica messages (``publish_to_replicas``, e.g. an editor save that must reach a sandbox another
replica runs) travel on the same channel but go to the registered handlers, never to browsers;
delivery is at most once (Redis pub/sub): the DB stays the truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from coolcoding.schemas.ws import Resync

log = logging.getLogger(__name__)

Event = dict[str, Any]
_CHANNEL = "coolcoding:events"
ReplicaHandler = Callable[[str, Event], Coroutine[Any, Any, None]]


class EventBus:
    """Publish/subscribe of JSON-able events keyed by session uuid."""

    def __init__(self, redis_url: str = "", queue_size: int = 1000) -> None:
        self._subs: dict[str, set[asyncio.Queue[Event]]] = defaultdict(set)
        self._queue_size = queue_size
        self._redis_url = redis_url
        self._origin = uuid.uuid4().hex
        self._redis: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._handlers: list[ReplicaHandler] = []
        self._handling: set[asyncio.Task[None]] = set()

    @property
    def origin(self) -> str:
        """This replica's id on the bus (random per process)."""
        return self._origin

    @property
    def shared(self) -> bool:
        """Whether messages reach other replicas (Redis is configured)."""
        return bool(self._redis_url)

    def on_replica_message(self, handler: ReplicaHandler) -> None:
        """Call ``handler(session_uuid, message)`` for other replicas' replica messages."""
        self._handlers.append(handler)

    async def publish_to_replicas(self, session_uuid: str, message: Event) -> bool:
        """Send ``message`` to the other replicas' handlers; whether it was sent."""
        if self._redis is None:
            return False
        payload = json.dumps({"origin": self._origin, "session": session_uuid, "replica": message})
        try:
            await self._redis.publish(_CHANNEL, payload)
        except Exception:
            log.warning("redis publish of a replica message failed", exc_info=True)
            return False
        return True

    def _handle(self, session_uuid: str, message: Event) -> None:
        for handler in self._handlers:
            task = asyncio.create_task(handler(session_uuid, message))
            self._handling.add(task)
            task.add_done_callback(self._handling.discard)

    async def start(self) -> None:
        if not self._redis_url:
            return
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(self._redis_url)
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(_CHANNEL)
        self._listener = asyncio.create_task(self._listen(pubsub))

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        if self._redis is not None:
            await self._redis.aclose()

    async def _listen(self, pubsub: Any) -> None:
        async for msg in pubsub.listen():
            if msg.get("type") != "message":
                continue
            try:
                envelope = json.loads(msg["data"])
            except (ValueError, TypeError):
                continue
            if envelope.get("origin") == self._origin:
                continue
            if "replica" in envelope:
                self._handle(envelope["session"], envelope["replica"])
            else:
                self._deliver(envelope["session"], envelope["event"])

    def _deliver(self, session_uuid: str, event: Event) -> None:
        for q in list(self._subs.get(session_uuid, ())):
            if q.full():
                # A stalled browser loses old events rather than growing server memory; it
                # re-lists the tree when it sees the "resync" marker.
                with contextlib.suppress(asyncio.QueueEmpty):
                    while not q.empty():
                        q.get_nowait()
                q.put_nowait(Resync().as_dict())
            q.put_nowait(event)

    async def publish(self, session_uuid: str, event: Event) -> None:
        self._deliver(session_uuid, event)
        if self._redis is not None:
            payload = json.dumps({"origin": self._origin, "session": session_uuid, "event": event})
            try:
                await self._redis.publish(_CHANNEL, payload)
            except Exception:  # Redis is optional: a replica-local delivery still happened.
                log.warning("redis publish failed", exc_info=True)

    @contextlib.asynccontextmanager
    async def subscribe(self, session_uuid: str) -> AsyncIterator[asyncio.Queue[Event]]:
        q: asyncio.Queue[Event] = asyncio.Queue(maxsize=self._queue_size)
        self._subs[session_uuid].add(q)
        try:
            yield q
        finally:
            self._subs[session_uuid].discard(q)
            if not self._subs[session_uuid]:
                del self._subs[session_uuid]

    def subscriber_count(self, session_uuid: str) -> int:
        return len(self._subs.get(session_uuid, ()))
