"""Issue 14: a sandbox's agent secret, which a later server process needs to reattach, is kept
where only root reads it - never in the database - and the DB's state cannot point the server
at another socket (a forged ``sandbox_state`` is not followed)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from coolcoding.sandbox.local.runtime import LocalRuntime
from tests.conftest import register_user, searchable, start_live_server
from tests.sandbox_helpers import Term

pytestmark = pytest.mark.sandbox


async def test_the_secret_is_root_only_and_never_in_the_database(tmp_path: Path) -> None:
    server, stop = start_live_server("sqlite", searchable(tmp_path))
    try:
        u = register_user(server)
        sid = u.new_session()
        t = await Term.open(server, u, sid)
        await t.run("true")
        runtime = server.platform.runtime
        assert isinstance(runtime, LocalRuntime)
        sandbox = server.platform.sandboxes.get(sid)
        secret = sandbox.agent.secret
        state = runtime.get_state(sid)
        text = json.dumps(state)
        assert secret.hex() not in text and repr(secret) not in text
        path = runtime.agents.secret_path(sid)
        st = os.stat(path)
        assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o600
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        # The sandbox user cannot read it: the directory is closed to its uid.
        r = await sandbox.exec(["sh", "-c", f"cat {path} 2>&1; ls {path.parent} 2>&1; true"])
        assert secret not in r.stdout
        await t.close()
    finally:
        stop()


async def test_a_forged_state_is_not_followed_to_another_socket(tmp_path: Path) -> None:
    """Paths come from the session id, not from the DB row: a state naming another session's
    socket does not make the server treat that agent as this session's."""
    server, stop = start_live_server("sqlite", searchable(tmp_path))
    try:
        u = register_user(server)
        victim, other = u.new_session(), u.new_session()
        t = await Term.open(server, u, victim)
        await t.run("true")
        runtime = server.platform.runtime
        assert isinstance(runtime, LocalRuntime)
        forged = {"agent": {"socket": runtime.agents.socket_path(victim),
                            "secret_file": str(runtime.agents.secret_path(victim)), "pid": 1}}  # fmt: skip
        assert await runtime.reachable(victim, forged)
        assert not await runtime.reachable(other, forged)  # no agent of its own: not reachable
        await t.close()
    finally:
        stop()
