"""Helpers for tests that drive real sandboxes over real WebSockets (terminal, events, sync)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from typing import Any

import websockets

from coolcoding.filesync.watcher import _libc as watcher_libc
from tests.conftest import LiveServer, UserClient

COMMAND_TIMEOUT = 15.0


def cookie(u: UserClient) -> dict[str, str]:
    return {"Cookie": f"cc_session={u.token}"}


class Term:
    """One terminal WebSocket: send keystrokes, collect output and control messages."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.output = bytearray()
        self.controls: list[dict[str, Any]] = []

    @classmethod
    async def open(
        cls,
        server: LiveServer,
        u: UserClient,
        sid: str,
        tid: str = "t1",
        cols: int = 100,
        rows: int = 30,
        **kw: Any,
    ) -> Term:
        url = f"{server.ws_url}/api/sessions/{sid}/terminals/{tid}?cols={cols}&rows={rows}"
        ws = await websockets.connect(url, additional_headers=cookie(u), max_size=None, **kw)
        t = cls(ws)
        ready = json.loads(await asyncio.wait_for(ws.recv(), COMMAND_TIMEOUT))
        assert ready["type"] == "ready", ready
        t.controls.append(ready)
        return t

    async def recv_until(
        self, pred: Callable[[dict[str, Any] | None], bool], timeout: float = COMMAND_TIMEOUT
    ) -> dict[str, Any] | None:
        end = time.monotonic() + timeout
        while True:
            m = await asyncio.wait_for(self.ws.recv(), max(0.01, end - time.monotonic()))
            if isinstance(m, bytes):
                self.output += m
                if pred(None):
                    return None
                continue
            msg = json.loads(m)
            self.controls.append(msg)
            if pred(msg):
                return msg

    async def run(self, command: str) -> tuple[dict[str, Any], bytes]:
        """Type ``command`` + Enter; wait for its ``command`` record; return it and the output."""
        start = len(self.output)
        await self.ws.send((command + "\r").encode())
        msg = await self.recv_until(lambda m: m is not None and m["type"] == "command")
        assert msg is not None
        return msg, bytes(self.output[start:])

    async def wait_output(self, needle: bytes, timeout: float = COMMAND_TIMEOUT) -> None:
        if needle in self.output:
            return
        await self.recv_until(lambda _m: needle in self.output, timeout)

    async def close(self) -> None:
        await self.ws.close()


async def events_socket(server: LiveServer, u: UserClient, sid: str) -> Any:
    return await websockets.connect(
        f"{server.ws_url}/api/sessions/{sid}/events", additional_headers=cookie(u)
    )


async def next_event(
    ws: Any, pred: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while True:
        ev = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, end - time.monotonic())))
        if pred(ev):
            return ev


def wait_until(check: Callable[[], Any], timeout: float = 5.0, step: float = 0.02) -> Any:
    end = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(step)


def file_items(u: UserClient, sid: str) -> dict[str, dict[str, Any]]:
    r = u.client.get(f"/api/workspace/{sid}/files")
    assert r.status_code == 200, r.text
    return {i["path"]: i for i in r.json()["items"]}


def hold_all_inotify_instances(uid: int) -> tuple[int, int]:
    """A child with ``uid`` takes every inotify instance that uid may have; returns (pid, fd to
    close to let it go) once it holds them."""
    ready_r, ready_w = os.pipe()
    hold_r, hold_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(ready_r)
            os.close(hold_w)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            held = 0
            while watcher_libc.inotify_init1(os.O_CLOEXEC) >= 0:
                held += 1
            os.write(ready_w, str(held).encode())
            os.read(hold_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(hold_r)
    held = os.read(ready_r, 32)
    os.close(ready_r)
    assert int(held) > 0
    return pid, hold_w
