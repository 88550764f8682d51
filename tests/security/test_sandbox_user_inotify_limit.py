"""Scale (issue 14): a session's workspace watcher is its agent's inotify instance, charged to the
sandbox's own uid. When that uid has none left (its programs, or another session sharing the uid
by a hash collision, took all ``fs.inotify.max_user_instances``), the start fails with an error
that names the limit, not "the sandbox failed to start"; once instances are free it starts."""

from __future__ import annotations

import os

import pytest

from coolcoding.sandbox.local.process import credentials_for
from tests.conftest import LiveServer, UserClient, module_live_server
from tests.sandbox_helpers import hold_all_inotify_instances

pytestmark = pytest.mark.sandbox

server = module_live_server("inolimit", sandbox_pool_size=0)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as the sandbox's uid")
def test_a_sandbox_uid_without_inotify_instances_is_named_in_the_start_error(
    server: LiveServer, user: UserClient
) -> None:
    sid = user.new_session()
    s = server.settings
    uid = credentials_for(sid, s.sandbox_uid_base, s.sandbox_uid_count).uid
    pid, release = hold_all_inotify_instances(uid)
    try:
        r = user.client.post(f"/api/sessions/{sid}/sandbox/start")
        assert r.status_code == 503, r.text
        body = r.json()
        limit = open("/proc/sys/fs/inotify/max_user_instances").read().strip()
        assert f"fs.inotify.max_user_instances ({limit}) reached for the sandbox's user" in str(
            body
        ), body
        got = user.client.get(f"/api/sessions/{sid}").json()
        assert got["sandbox_status"] == "error", got
    finally:
        os.close(release)
        os.waitpid(pid, 0)
    r = user.client.post(f"/api/sessions/{sid}/sandbox/start")
    assert r.status_code == 200, r.text
