"""A watch-based cache of one kind of object (KubeSpawner's reflector idea): list once, then
follow the watch stream; relist when the stream's version expired (410). The runtime reads pods
and volume claims from here instead of polling the API server, and waits on ``changed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError

log = logging.getLogger(__name__)
T = TypeVar("T")


class Reflector(Generic[T]):
    def __init__(
        self, client: AsyncClient, kind: type[T], namespace: str, labels: dict[str, str]
    ) -> None:
        self.client: Any = client  # lightkube's overloads do not take a TypeVar kind
        self.kind = kind
        self.namespace = namespace
        self.labels = labels
        self.objects: dict[str, T] = {}
        self.changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.requests = 0  # list + watch requests made (bench: API requests)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        await self._ready.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _list(self) -> str:
        self.requests += 1
        listing: Any = self.client.list(self.kind, namespace=self.namespace, labels=self.labels)
        fresh = {obj.metadata.name: obj async for obj in listing}
        async with self.changed:
            self.objects = fresh
            self.changed.notify_all()
        self._ready.set()
        return str(listing.resourceVersion)

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            try:
                version = await self._list()
                self.requests += 1
                async for op, obj in self.client.watch(
                    self.kind, namespace=self.namespace, labels=self.labels,
                    resource_version=version,
                ):  # fmt: skip
                    if op not in ("ADDED", "MODIFIED", "DELETED"):
                        continue  # BOOKMARK: only a version
                    name = obj.metadata.name if obj.metadata else ""
                    async with self.changed:
                        if op == "DELETED":
                            self.objects.pop(name, None)
                        else:
                            self.objects[name] = obj
                        self.changed.notify_all()
                    backoff = 0.5
            except asyncio.CancelledError:
                raise
            except ApiError as e:
                if e.status.code != 410:
                    log.warning("watch of %s failed: %s", self.kind.__name__, e)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30)
            except Exception:
                log.warning("watch of %s broke; relisting", self.kind.__name__, exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30)

    def find(self, predicate: Callable[[T], bool]) -> list[T]:
        return [o for o in self.objects.values() if predicate(o)]

    async def wait_for(self, predicate: Callable[[], Any], timeout_s: float) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked on every change); returns its value."""
        async with asyncio.timeout(timeout_s), self.changed:
            while not (value := predicate()):
                await self.changed.wait()
            return value
