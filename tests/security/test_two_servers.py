"""Finding 11: two servers on one host with the same cgroup parent name (the default is
shared) must never touch each other's sandboxes. Server B starting up (orphan cleanup, recovery
of sessions left running) and shutting down must leave server A's running sandbox, its shell
and its session's status alone - with separate data dirs and, here, even one shared database.

The cgroup parent is a fresh test name, never the real default: a real server on this host is
not touched by the test either.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from coolcoding.app import create_app
from coolcoding.sandbox.local.identity import server_id
from coolcoding.sandbox.local.runtime import LocalRuntime
from tests.conftest import (
    LiveServer,
    _free_port,
    _ServerThread,
    make_settings,
    register_user,
    searchable,
    start_live_server,
)
from tests.integration.conftest_sandbox import new_spec, sandbox_settings
from tests.sandbox_helpers import Term

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server_a(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    parent = f"coolcoding-test-two-{secrets.token_hex(4)}"
    srv, stop = start_live_server(
        str(request.param),
        searchable(tmp_path_factory.mktemp(f"two-a-{request.param}")),
        sandbox_cgroup_parent=parent,
    )
    yield srv
    stop()


def run_server_b(a: LiveServer, data_dir: Path) -> _ServerThread:
    """Another server on this host: its own data dir, A's database and cgroup parent."""
    data_dir.mkdir(exist_ok=True)
    settings = make_settings(
        searchable(data_dir),
        a.settings.database_url,
        sandbox_cgroup_parent=a.settings.sandbox_cgroup_parent,
    )
    thread = _ServerThread(create_app(settings), _free_port())
    thread.start()
    return thread


async def test_another_servers_start_and_stop_leave_our_sandboxes_alone(
    server_a: LiveServer, tmp_path: Path
) -> None:
    user = register_user(server_a)
    sid = user.new_session()
    term = await Term.open(server_a, user, sid)
    _, out = await term.run("echo before-$((6*7))")
    assert b"before-42" in out
    runtime = server_a.platform.runtime
    assert isinstance(runtime, LocalRuntime)
    cgroup = runtime.host.cgroups.group(sid)
    shell_pids = cgroup._all_pids()
    assert shell_pids and all(Path(p).is_dir() for p in cgroup.paths)

    b = await asyncio.to_thread(run_server_b, server_a, tmp_path / "b")  # B's start-up
    try:
        assert server_id(tmp_path / "b") != server_id(server_a.settings.data_dir)
        assert cgroup._all_pids() == shell_pids, "server B killed server A's shell"
        _, out = await term.run("echo after-$((6*7))")
        assert b"after-42" in out
        status = user.client.get(f"/api/sessions/{sid}").json()["sandbox_status"]
        assert status == "running", "server B took over server A's running session"
    finally:
        await asyncio.to_thread(b.stop)  # B's shutdown cleans up too
    assert cgroup._all_pids() == shell_pids
    _, out = await term.run("echo still-$((6*7))")
    assert b"still-42" in out
    await term.close()
    user.client.close()


async def test_the_shared_parent_removed_by_another_servers_shutdown_is_made_again() -> None:
    """B's shutdown removes the shared parent when it is empty (A had no sandbox yet); A's
    next sandbox still starts."""
    parent = f"coolcoding-test-two-{secrets.token_hex(4)}"
    dirs = [Path(tempfile.mkdtemp(prefix="cc-two-", dir="/tmp")) for _ in range(2)]
    for d in dirs:
        os.chmod(d, 0o711)
    a, b = (LocalRuntime(sandbox_settings(d, sandbox_cgroup_parent=parent)) for d in dirs)
    try:
        await b.shutdown()
        assert not any(top.exists() for top in a.host.cgroups.tops.values())
        sb = await a.start(new_spec(memory_mb=128, pids=16))
        result = await sb.exec(["/bin/echo", "ok"])
        assert result.exit_code == 0 and result.stdout == b"ok\n"
    finally:
        await a.shutdown()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
    assert not any(top.exists() for top in a.host.cgroups.tops.values())
