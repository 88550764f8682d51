"""Finding 6: a storm of files made in one session's terminal must not starve the API or another
user's session, and the workspace quota is applied early (the user is told once).

One user's terminal creates 20,000 small files (the quota is 10,000 items) while a second user
polls /api/health/ and opens a terminal in their own session. Success, not latency, is asserted
(the latency figure is bench/bench_sync_storm.py); the timeouts are generous.

The workspace is a plain directory (``sandbox_disk_quota=measured``): with the default disk image
the kernel itself refuses files beyond the item quota (its inode count), so the storm would stop
at ENOSPC before the sync's own quota handling, which is what this test attacks."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx
import pytest

from tests.conftest import (
    LiveServer,
    module_live_server,
    register_user,
)
from tests.sandbox_helpers import Term, events_socket, file_items

pytestmark = pytest.mark.sandbox
FILES = 20_000


server = module_live_server("storm", sandbox_disk_quota="measured")


async def _collect(ws: Any, into: list[dict[str, Any]]) -> None:
    with contextlib.suppress(Exception):
        while True:
            into.append(json.loads(await ws.recv()))


async def _poll_health(base_url: str, stop: asyncio.Event, codes: list[int]) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as c:
        while not stop.is_set():
            codes.append((await c.get("/api/health/")).status_code)
            await asyncio.sleep(0.05)


async def test_file_storm_leaves_api_and_other_sessions_usable(server: LiveServer) -> None:
    storm_user, other_user = register_user(server), register_user(server)
    sid, other_sid = storm_user.new_session(), other_user.new_session()
    events: list[dict[str, Any]] = []
    ev = await events_socket(server, storm_user, sid)
    collector = asyncio.create_task(_collect(ev, events))
    t = await Term.open(server, storm_user, sid)
    stop, codes = asyncio.Event(), []
    health = asyncio.create_task(_poll_health(server.base_url, stop, codes))
    await t.ws.send(
        (
            "mkdir storm && python3 -c \"[open(f'storm/f{i}', 'w').write('x') "
            f'for i in range({FILES})]"\r'
        ).encode()
    )
    # The command's end waits for its files to be synced: generous, it is not what is measured.
    storm = asyncio.create_task(
        t.recv_until(lambda m: m is not None and m["type"] == "command", timeout=300)
    )
    await asyncio.sleep(1.0)  # the storm is under way
    other = await Term.open(server, other_user, other_sid)
    msg, out = await other.run("echo other-ok")
    assert msg["exit_code"] == 0 and b"other-ok" in out
    await other.close()
    msg = await storm
    assert msg is not None and msg["exit_code"] == 0, bytes(t.output)[-500:]
    stop.set()
    await health
    assert codes and all(c == 200 for c in codes), codes
    # The DB obeys the quota, and the user was told once.
    limit = server.settings.max_workspace_items
    for _ in range(600):
        quota = [
            e for e in events if e.get("type") == "sync_error" and e["error"] == "quota_exceeded"
        ]
        if quota:
            break
        await asyncio.sleep(0.1)
    items = file_items(storm_user, sid)
    assert len(items) <= limit
    assert len(quota) == 1, quota[:3]
    await t.close()
    collector.cancel()
    with contextlib.suppress(BaseException):
        await collector
    await ev.close()
    storm_user.client.close()
    other_user.client.close()
