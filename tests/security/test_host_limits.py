"""Finding 9, the message: when a host-wide kernel limit stops a sandbox start anyway, the error
names the limit (``fs.inotify.max_user_instances (128) reached on the host``), not "the sandbox
failed to start".

The inotify case is real: a forked child switches to an unused uid (inotify instances are
counted per uid, so root's budget, shared with the host, is not touched), starts the sync
watcher until the kernel refuses, and reports what the translation made of that error.
"""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import tempfile
from pathlib import Path

import pytest

from coolcoding.filesync.watcher import TreeWatcher
from coolcoding.sandbox.base import SandboxError
from coolcoding.sandbox.host_limits import (
    describe_os_error,
    host_limit_message,
)


def _sysctl(name: str) -> str:
    return Path("/proc/sys", *name.split(".")).read_text().strip()


async def _exhaust_inotify_instances() -> str:
    root = tempfile.mkdtemp(dir="/tmp")
    watchers: list[TreeWatcher] = []

    async def nothing(_batch: object) -> None:
        return None

    try:
        for _ in range(100_000):
            w = TreeWatcher(root, nothing)
            try:
                w.start()
            except OSError as exc:
                wrapped = SandboxError("start_failed", "The sandbox failed to start.")
                wrapped.__cause__ = exc
                return f"{len(watchers)}|{host_limit_message(wrapped)}"
            watchers.append(w)
        return "never refused|"
    finally:
        for w in watchers:
            await w.close()
        os.rmdir(root)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an unused uid")
def test_exhausted_inotify_instances_are_named_with_their_value() -> None:
    uid = 2_000_000_000 + secrets.randbelow(1_000_000)  # nobody's: a budget of its own
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            os.write(w, asyncio.run(_exhaust_inotify_instances()).encode())
        except BaseException as exc:
            os.write(w, f"error|{exc!r}".encode())
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        report = f.read().decode()
    _, status = os.waitpid(pid, 0)
    started, message = report.split("|", 1)
    assert os.waitstatus_to_exitcode(status) == 0, report
    limit = _sysctl("fs.inotify.max_user_instances")
    assert int(started) == int(limit)
    assert message == f"fs.inotify.max_user_instances ({limit}) reached on the host"


def test_the_other_host_limits_are_named() -> None:
    watches = describe_os_error(OSError(errno.ENOSPC, "inotify_add_watch: No space left"))
    assert watches == (
        f"fs.inotify.max_user_watches ({_sysctl('fs.inotify.max_user_watches')}) "
        "reached on the host"
    )
    assert "fs.file-max" in str(describe_os_error(OSError(errno.ENFILE, "open")))
    assert "RLIMIT_NOFILE" in str(describe_os_error(OSError(errno.EMFILE, "open")))
    assert "loop device" in str(describe_os_error(OSError(errno.ENXIO, "losetup /dev/loop7")))
    # Not a host limit: the generic message stays.
    assert describe_os_error(OSError(errno.EACCES, "open")) is None
    assert host_limit_message(ValueError("bad")) is None


def test_memory_pids_and_a_sandbox_users_inotify_are_named() -> None:
    assert "out of memory on the host" in str(describe_os_error(OSError(errno.ENOMEM, "fork")))
    pids = describe_os_error(OSError(errno.EAGAIN, "fork: Resource temporarily unavailable"))
    assert f"kernel.pid_max ({_sysctl('kernel.pid_max')})" in str(pids)

    class FromAgent(Exception):  # the agent's refusal, as AgentError carries it
        code = "host_limit"
        message = "fs.inotify.max_user_instances (128) reached for the sandbox's user"

    wrapped = SandboxError("start_failed", "The sandbox failed to start.")
    wrapped.__cause__ = FromAgent()
    assert host_limit_message(wrapped) == FromAgent.message
