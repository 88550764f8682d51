"""A co-editing client for tests and benches: pycrdt documents over a real WebSocket, speaking the
protocol of docs/API.md "Co-editing" (the browser's does the same with Yjs)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import websockets
from pycrdt import Awareness, Doc, Text, YMessageType, YSyncMessageType

from coolcoding.collab.protocol import PRESENCE, awareness_frame, parse_frame, sync_frame


class CollabClient:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.ws: Any = None
        self.docs: dict[str, Doc[Text]] = {}
        self.epochs: dict[str, str] = {}
        self.synced: dict[str, asyncio.Event] = {}
        self.messages: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.awareness: dict[str, Awareness] = {}
        self.hello: dict[str, Any] | None = None
        self.on_remote: Callable[[str], None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self.reconnects = 0

    async def connect(self) -> None:
        self.ws = await websockets.connect(
            self.url, additional_headers={"Cookie": f"cc_session={self.token}"}, max_size=None
        )
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self.ws is not None:
            await self.ws.close()

    async def reconnect(self) -> None:
        """After the socket died: connect again and re-join every open file (the sync exchange
        sends the server whatever it lacks)."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        with contextlib.suppress(Exception):
            await self.ws.close()
        self.reconnects += 1
        await self.connect()
        for path in list(self.docs):
            await self.join(path)

    def text(self, path: str) -> str:
        return str(self.docs[path].get("content", type=Text))

    async def join(self, path: str, timeout: float = 20) -> None:
        self.synced[path] = asyncio.Event()
        await self.ws.send(json.dumps({"type": "join", "path": path}))
        await asyncio.wait_for(self.synced[path].wait(), timeout)

    async def leave(self, path: str) -> None:
        await self.ws.send(json.dumps({"type": "leave", "path": path}))

    async def edit(self, path: str, fn: Callable[[Text], None]) -> bytes:
        """Apply ``fn`` to the local text and send the resulting update; returns it."""
        doc = self.docs[path]
        before = doc.get_state()
        fn(doc.get("content", type=Text))
        update = doc.get_update(before)
        await self.send_update(path, update)
        return update

    async def flush(self, path: str, timeout: float = 20) -> dict[str, Any]:
        """Ask the server to save ``path`` now; its ``flushed`` answer."""
        self._flush_id = getattr(self, "_flush_id", 0) + 1
        fid = self._flush_id
        seen = len(self.messages)
        await self.ws.send(json.dumps({"type": "flush", "path": path, "id": fid}))
        await self.wait_for(
            lambda: any(m["type"] == "flushed" and m["id"] == fid for m in self.messages[seen:]),
            timeout,
        )
        return next(m for m in self.messages[seen:] if m["type"] == "flushed" and m["id"] == fid)

    async def send_update(self, path: str, update: bytes) -> None:
        await self.ws.send(sync_frame(path, YSyncMessageType.SYNC_UPDATE, update))

    async def send_raw(self, data: bytes) -> None:
        await self.ws.send(data)

    async def set_presence(self, state: dict[str, Any], path: str = PRESENCE) -> None:
        aw = self.awareness.setdefault(path, Awareness(Doc()))
        aw.set_local_state(state)
        await self.ws.send(awareness_frame(path, aw.encode_awareness_update([aw.client_id])))

    async def wait_for(self, pred: Callable[[], bool], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not met")
            await asyncio.sleep(0.02)

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for msg in self.ws:
                if isinstance(msg, str):
                    self._on_json(json.loads(msg))
                else:
                    await self._on_frame(msg)

    def _on_json(self, m: dict[str, Any]) -> None:
        self.messages.append(m)
        if m["type"] == "hello":
            self.hello = m
        elif m["type"] == "joined":
            path = m["path"]
            if self.epochs.get(path) != m["epoch"]:
                # Another lineage: start from nothing (our items would duplicate the text).
                self.docs[path] = Doc()
                self.epochs[path] = m["epoch"]
        elif m["type"] == "error":
            self.errors.append(m)
            if m.get("path") in self.synced and m.get("error") in (
                "file_not_found",
                "binary_file",
                "file_too_large",
                "is_a_folder",
            ):
                self.synced[m["path"]].set()

    async def _on_frame(self, data: bytes) -> None:
        f = parse_frame(data)
        if f.kind == YMessageType.AWARENESS:
            aw = self.awareness.setdefault(f.path, Awareness(Doc()))
            aw.apply_awareness_update(f.payload, "remote")
            return
        doc = self.docs.get(f.path)
        if doc is None or f.path not in self.epochs:
            return
        if f.sync_kind == YSyncMessageType.SYNC_STEP1:
            # The server's state: answer with what it lacks, then ask for what we lack.
            await self.ws.send(
                sync_frame(f.path, YSyncMessageType.SYNC_STEP2, doc.get_update(f.payload))
            )
            await self.ws.send(sync_frame(f.path, YSyncMessageType.SYNC_STEP1, doc.get_state()))
        else:
            if f.payload != b"\x00\x00":
                doc.apply_update(f.payload)
            if f.sync_kind == YSyncMessageType.SYNC_STEP2:
                self.synced[f.path].set()
            if self.on_remote is not None:
                self.on_remote(f.path)
