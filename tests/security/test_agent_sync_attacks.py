"""Attacks on the agent's protocol-2 methods (the sync engine's side, issue 14): probing and
swapping through ``..``, absolute paths, symlinked parents and symlinks at the target, and a
sandbox program racing a guarded swap. Nothing is read or written outside the workspace, and
a program's bytes the caller never saw are kept (a conflict copy), never discarded."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from coolcoding.agent.client import AgentError
from tests.agent_helpers import RunningAgent, running_agent
from tests.integration.conftest_sandbox import requires_sandbox

SANDBOX = pytest.param("sandbox", marks=[pytest.mark.sandbox, requires_sandbox])


@pytest.fixture(params=["plain", SANDBOX])
async def agent(request: pytest.FixtureRequest) -> AsyncIterator[RunningAgent]:
    async with running_agent(request.param) as a:
        yield a


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_probe_never_reads_outside_the_workspace(agent: RunningAgent) -> None:
    outside = Path(tempfile.mkdtemp(prefix="cc-outside-"))
    try:
        (outside / "secret").write_bytes(b"host secret")
        target = "/etc" if agent.kind == "sandbox" else str(outside)
        victim = "/etc/hostname" if agent.kind == "sandbox" else str(outside / "secret")
        name = "hostname" if agent.kind == "sandbox" else "secret"
        os.symlink(target, agent.workspace / "esc")
        os.symlink(victim, agent.workspace / "link")
        (agent.workspace / "ok.txt").write_bytes(b"fine")
        c = await agent.client()
        for bad in ("../secret", f"../{agent.workspace.parent.name}/secret", "/etc/passwd",
                    "a//b", "./ok.txt", "", "a/\0"):  # fmt: skip
            with pytest.raises(AgentError) as e:
                await c.probe([bad])
            assert e.value.code in ("invalid_path", "bad_params"), (bad, e.value)
        got = {e["path"]: (e, data) for e, data in await c.probe([f"esc/{name}", "link", "ok.txt"])}
        assert got[f"esc/{name}"][0]["type"] == "absent" and got[f"esc/{name}"][1] is None
        assert got["link"][0]["type"] == "symlink" and got["link"][1] is None
        assert got["ok.txt"][1] == b"fine" and got["ok.txt"][0]["sha256"] == sha(b"fine")
        await c.close()
    finally:
        shutil.rmtree(outside)


async def test_swap_never_writes_through_a_symlink(agent: RunningAgent) -> None:
    outside = Path(tempfile.mkdtemp(prefix="cc-outside-"))
    try:
        (outside / "secret").write_bytes(b"host secret")
        os.symlink(str(outside), agent.workspace / "esc")
        os.symlink(str(outside / "secret"), agent.workspace / "link")
        c = await agent.client()
        with pytest.raises(AgentError) as e:
            await c.swap("esc/secret", b"planted", [])
        assert e.value.code == "not_a_file"
        with pytest.raises(AgentError) as e:
            await c.swap("link", b"planted", [])
        assert e.value.code == "not_a_file"
        with pytest.raises(AgentError) as e:
            await c.swap("../secret", b"planted", [])
        assert e.value.code == "invalid_path"
        assert (outside / "secret").read_bytes() == b"host secret"
        assert sorted(os.listdir(outside)) == ["secret"]
        assert (agent.workspace / "link").is_symlink()
        await c.close()
    finally:
        shutil.rmtree(outside)


async def test_swap_keeps_bytes_the_caller_never_saw(agent: RunningAgent) -> None:
    path = agent.workspace / "notes.txt"
    path.write_bytes(b"base\n")
    c = await agent.client()
    # The caller knows "base": replacing it discards nothing.
    r = await c.swap("notes.txt", b"editor 1\n", [sha(b"base\n")])
    assert r == {"existed": True, "old_size": 5, "aside": None}
    assert path.read_bytes() == b"editor 1\n"
    # A program appended meanwhile: its bytes are kept next to it, the editor's are in place.
    with path.open("ab") as f:
        f.write(b"program line\n")
    r = await c.swap("notes.txt", b"editor 2\n", [sha(b"editor 1\n")])
    assert r["aside"] is not None and r["aside"].startswith("notes.conflict-")
    assert (agent.workspace / r["aside"]).read_bytes() == b"editor 1\nprogram line\n"
    assert path.read_bytes() == b"editor 2\n"
    # A writer that opened the file before the exchange and writes after it: a late copy.
    f = path.open("ab")
    r = await c.swap("notes.txt", b"editor 3\n", [sha(b"editor 2\n")])
    assert r["aside"] is None
    f.write(b"late bytes\n")
    f.close()
    copies = await c.fs_late()
    assert [x["path"] for x in copies] == ["notes.txt"], copies
    late = (agent.workspace / copies[0]["conflict_path"]).read_bytes()
    assert late == b"editor 2\nlate bytes\n"
    # Removing with a stale base keeps the program's version too.
    path.write_bytes(b"program rewrote it\n")
    r = await c.swap("notes.txt", None, [sha(b"editor 3\n")])
    assert not path.exists() and r["aside"] is not None
    assert (agent.workspace / r["aside"]).read_bytes() == b"program rewrote it\n"
    await c.close()


async def test_a_change_event_names_the_state_now_and_skips_the_agents_temp_files(
    agent: RunningAgent,
) -> None:
    c = await agent.client()
    await c.subscribe(fs=True)
    (agent.workspace / "a.txt").write_bytes(b"x")
    await c.swap("a.txt", b"y", [sha(b"x")])
    await c.fs_flush()
    seen: set[str] = set()
    while not c.events.empty():
        msg = c.events.get_nowait()
        if msg.get("event") == "fs.changes":
            seen.update(ch["path"] for ch in msg["data"]["changes"])
    assert "a.txt" in seen and not any(p.startswith(".cc-tmp-") for p in seen), seen
    assert await c.fs_pending("a.txt") is False
    await asyncio.sleep(0)
    await c.close()
