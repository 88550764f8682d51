"""Finding 3: terminal appends raced with editor saves must never vanish.

The terminal appends ``T<i>`` lines to ``race.txt`` while an API client appends ``E<j>`` lines with
``base_version`` (retrying on 409). Afterwards every line is in the final file (the DB and the disk
agree) or in a conflict copy announced by a ``conflict`` event: nothing is lost silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, UserClient, register_user, searchable, start_live_server
from tests.sandbox_helpers import Term, events_socket

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    srv, stop = start_live_server(
        request.param, searchable(tmp_path_factory.mktemp(f"lost-{request.param}"))
    )
    yield srv
    stop()


@pytest.fixture
def user(server: LiveServer) -> Iterator[UserClient]:
    u = register_user(server)
    yield u
    u.client.close()


async def _collect(ws: Any, into: list[dict[str, Any]]) -> None:
    with contextlib.suppress(Exception):
        while True:
            into.append(json.loads(await ws.recv()))


async def _editor_appends(
    client: httpx.AsyncClient, sid: str, done: asyncio.Event, pause_s: float
) -> int:
    """Append E1, E2, ... until ``done``; each append re-reads and retries on a 409."""
    url = f"/api/workspace/{sid}/file/race.txt"
    j = 0
    while not done.is_set():
        j += 1
        while True:
            cur = (await client.get(url)).json()
            body = {"content": cur["content"] + f"E{j}\n", "base_version": cur["version"]}
            r = await client.post(url, json=body)
            if r.status_code != 409:
                assert r.status_code in (200, 201), r.text
                break
        await asyncio.sleep(pause_s)
    return j


def _lines(text: str) -> set[str]:
    return set(text.splitlines())


@pytest.mark.parametrize(("every_ms", "count"), [(5, 150), (20, 120), (100, 30)])
async def test_terminal_appends_racing_editor_saves_are_never_lost(
    server: LiveServer, user: UserClient, every_ms: int, count: int
) -> None:
    sid = user.new_session()
    r = user.client.post(f"/api/workspace/{sid}/file/race.txt", json={"content": "start\n"})
    assert r.status_code == 201, r.text
    events: list[dict[str, Any]] = []
    ev = await events_socket(server, user, sid)
    collector = asyncio.create_task(_collect(ev, events))
    t = await Term.open(server, user, sid)
    headers = {"Cookie": f"cc_session={user.token}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as client:
        done = asyncio.Event()
        editor = asyncio.create_task(_editor_appends(client, sid, done, every_ms / 2000))
        sleep = f"{every_ms / 1000:.3f}"
        msg, out = await t.run(
            f"for i in $(seq 1 {count}); do echo T$i >> race.txt; sleep {sleep}; done"
        )
        done.set()
        edits = await editor
        assert msg["exit_code"] == 0, out
        # Let sync settle: a command end flushes the watcher; then DB and disk must agree.
        await t.run("true")
        await asyncio.sleep(0.5)
        await t.run("true")
        final = (await client.get(f"/api/workspace/{sid}/file/race.txt")).json()["content"]
        root = server.platform.components["runtime"].workspace_dir(sid)
        assert root is not None
        disk = (Path(root) / "race.txt").read_text()
        assert final == disk
        conflicts = [e for e in events if e.get("type") == "conflict"]
        kept = _lines(final)
        for e in conflicts:
            got = await client.get(f"/api/workspace/{sid}/file/{e['conflict_path']}")
            if got.status_code == 200:
                kept |= _lines(got.json()["content"])
    await t.close()
    collector.cancel()
    with contextlib.suppress(BaseException):
        await collector
    await ev.close()
    lost_t = [f"T{i}" for i in range(1, count + 1) if f"T{i}" not in kept]
    lost_e = [f"E{j}" for j in range(1, edits + 1) if f"E{j}" not in kept]
    assert not lost_t and not lost_e, (
        f"lost {len(lost_t)} terminal lines {lost_t[:10]} and {len(lost_e)} editor lines "
        f"{lost_e[:10]}; {len(conflicts)} conflict copies"
    )
