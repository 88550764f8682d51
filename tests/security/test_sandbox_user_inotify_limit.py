"""Scale (issue 14): a session's workspace watcher is its agent's inotify instance, charged to the
sandbox's own uid. When that uid has none left (its programs, or another session sharing the uid
by a hash collision, took all ``fs.inotify.max_user_instances``), the start fails with an error
that names the limit, not "the sandbox failed to start"; once instances are free it starts."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from coolcoding.filesync.watcher import _libc
from coolcoding.sandbox.local.process import credentials_for
from tests.conftest import LiveServer, UserClient, module_live_server, register_user

pytestmark = pytest.mark.sandbox

server = module_live_server("inolimit", sandbox_pool_size=0)


@pytest.fixture
def user(server: LiveServer) -> Iterator[UserClient]:
    u = register_user(server)
    yield u
    u.client.close()


def _hold_all_instances(uid: int) -> tuple[int, int]:
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
            while _libc.inotify_init1(os.O_CLOEXEC) >= 0:
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


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as the sandbox's uid")
def test_a_sandbox_uid_without_inotify_instances_is_named_in_the_start_error(
    server: LiveServer, user: UserClient
) -> None:
    sid = user.new_session()
    s = server.settings
    uid = credentials_for(sid, s.sandbox_uid_base, s.sandbox_uid_count).uid
    pid, release = _hold_all_instances(uid)
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
