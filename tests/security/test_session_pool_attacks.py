"""Attacks on the session pool (sandbox/local/session_pool.py): a pre-started sandbox must never
carry anything into the session that gets it, and no session can get one it was not given."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from coolcoding.sandbox.base import SandboxError
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.sandbox.local.sandbox import LocalSandbox
from tests.integration.conftest_sandbox import make_runtime, requires_sandbox
from tests.integration.test_session_pool import TEMPLATE, first_prompt, run, spec_for

pytestmark = [pytest.mark.sandbox, requires_sandbox]


@pytest.fixture
async def pooled() -> AsyncIterator[LocalRuntime]:
    async with make_runtime(sandbox_session_pool_size=2, sandbox_pool_size=0) as rt:
        rt.keep_session_pool(TEMPLATE)
        await rt.session_pool.wait_full()
        yield rt


def reserved(rt: LocalRuntime, name: str) -> LocalSandbox:
    return rt.session_pool._reserved[name][0]


async def test_a_pooled_sandbox_nobody_was_given_cannot_be_started(pooled: LocalRuntime) -> None:
    """A start naming a pooled uuid that was not reserved (a forged or leaked id) would
    otherwise adopt the running sandbox whose agent answers, and the pool would later hand
    the same sandbox to another session."""
    waiting = [sb.spec.session_uuid for sb in pooled.session_pool.ready._ready]
    assert waiting
    with pytest.raises(SandboxError) as info:
        await pooled.start(spec_for(waiting[0]))
    assert info.value.reason == "bad_session"
    assert waiting[0] not in pooled._sandboxes
    # It is still handed out, once, to a session that reserves it.
    got = {pooled.reserve_session_uuid(network=False) for _ in waiting}
    assert set(waiting) == got


async def test_a_pooled_sandbox_with_a_file_planted_in_it_is_not_handed_out(
    pooled: LocalRuntime,
) -> None:
    name = pooled.reserve_session_uuid(network=False)
    assert name is not None
    planted = reserved(pooled, name).workspace / "planted.sh"
    planted.write_text("steal-the-next-session\n")
    os.chown(planted, *_owner(reserved(pooled, name).workspace))
    sb = await pooled.start(spec_for(name))
    assert isinstance(sb, LocalSandbox)
    listing = await run(sb, "ls -A /workspace")
    assert "planted.sh" not in listing  # a fresh workspace, not the touched one


async def test_a_pooled_sandbox_with_a_process_left_in_it_is_not_handed_out(
    pooled: LocalRuntime,
) -> None:
    name = pooled.reserve_session_uuid(network=False)
    assert name is not None
    touched = reserved(pooled, name)
    term = await touched.open_terminal(80, 24)
    await term.write(b"sleep 1000 & echo planted-$((1+1))\n")
    seen = b""
    while b"planted-2" not in seen:
        seen += await term.read()
    sb = await pooled.start(spec_for(name))
    assert isinstance(sb, LocalSandbox)
    assert sb is not touched
    procs = await run(sb, "ps -eo args")
    assert "sleep 1000" not in procs
    assert "ready-42" in await first_prompt(sb)


async def test_two_new_sessions_share_nothing(pooled: LocalRuntime) -> None:
    a_name = pooled.reserve_session_uuid(network=False)
    b_name = pooled.reserve_session_uuid(network=False)
    assert a_name is not None and b_name is not None
    a = await pooled.start(spec_for(a_name))
    b = await pooled.start(spec_for(b_name))
    assert isinstance(a, LocalSandbox) and isinstance(b, LocalSandbox)
    await run(a, "echo secret > /workspace/a.txt; (sleep 1000 &) ; true")
    assert a.creds.uid != b.creds.uid
    out = await run(b, "ls -A /workspace; ps -eo args; ls /proc | grep -c '^[0-9]'")
    assert "a.txt" not in out and "sleep 1000" not in out
    # b cannot reach a's workspace on the host either (another uid, mode 0700).
    st = os.stat(a.workspace)
    assert st.st_uid == a.creds.uid and st.st_mode & 0o077 == 0
    assert not Path(b.workspace, "a.txt").exists()


def _owner(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_uid, st.st_gid


async def test_a_refused_creation_gives_its_untouched_sandbox_back(pooled: LocalRuntime) -> None:
    """A creation refused before its insert (e.g. at the session cap) must not cost a sandbox
    start, or a user hammering a refused create makes the server start sandboxes for nothing;
    a sandbox whose uuid reached the DB is never given back (two sessions would share it)."""
    before = [sb.spec.session_uuid for sb in pooled.session_pool.ready._ready]
    for _ in range(5):
        name = pooled.reserve_session_uuid(network=False)
        assert name is not None
        await pooled.unreserve_session_uuid(name, unused=True)
    assert sorted(sb.spec.session_uuid for sb in pooled.session_pool.ready._ready) == sorted(before)
    used = pooled.reserve_session_uuid(network=False)
    assert used is not None
    await pooled.unreserve_session_uuid(used)  # its session exists: destroyed, not reused
    assert used not in pooled.session_pool.live
