"""Which host mounts the judge's spawn mount namespace leaves out (sandbox/local/spawnns.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from coolcoding.sandbox.local import spawnns
from coolcoding.sandbox.local.spawnns import mount_points, mounts_to_detach, unescape

HOST = [
    "/",
    "/proc",
    "/proc/kcore",  # a container's masked /proc entry: kept with /proc
    "/sys",
    "/sys/fs/cgroup",
    "/sys/fs/cgroup/memory",
    "/dev",
    "/dev/shm",
    "/dev/pts",
    "/usr",
    "/srv/data",  # the data dir's own disk
    "/srv/data/workspaces/1b90",  # a running session's workspace image
    "/srv/data/workspaces/a675",
    "/srv/other",
    "/srv/other",  # a mount over a mount: both copies go
    "/srv/datax",  # a sibling whose name starts like the data dir's
]
NEEDED = ["/usr", "/usr/bin/bwrap", "/srv/data/sandbox-state", "/srv/data/workspaces",
          "/dev/shm/cc-etc-1"]  # fmt: skip


def test_only_the_mounts_on_the_way_to_what_bwrap_reads_are_kept() -> None:
    drop = mounts_to_detach(HOST, NEEDED)
    kept = [p for p in HOST if p not in drop]
    assert kept == ["/", "/proc", "/proc/kcore", "/dev", "/dev/shm", "/dev/pts", "/usr",
                    "/srv/data"]  # fmt: skip


def test_session_images_sys_and_cgroups_are_detached_deepest_first() -> None:
    drop = mounts_to_detach(HOST, NEEDED)
    assert sorted(drop) == sorted(["/sys", "/sys/fs/cgroup", "/sys/fs/cgroup/memory",
                                   "/srv/data/workspaces/1b90", "/srv/data/workspaces/a675",
                                   "/srv/other", "/srv/other", "/srv/datax"])  # fmt: skip
    depth = [p.count("/") for p in drop]
    assert depth == sorted(depth, reverse=True)


def test_mountinfo_paths_are_unescaped() -> None:
    info = (
        "1 0 8:1 / / rw - ext4 /dev/vda rw\n"
        "2 1 0:5 / /srv/my\\040data rw - tmpfs t rw\n"
        "3 1 0:6 / /srv/a\\134b rw - tmpfs t rw\n"
    )
    assert mount_points(info) == ["/", "/srv/my data", "/srv/a\\b"]
    assert unescape("/x\\011y") == "/x\ty"
    assert unescape("/trailing\\04") == "/trailing\\04"


def test_a_namespace_that_cannot_be_made_leaves_bwrap_in_the_servers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(needed: object, **_kw: object) -> int:
        raise OSError("unshare: Operation not permitted")

    monkeypatch.setattr(spawnns, "create_spawn_namespace", fail)
    monkeypatch.setattr(spawnns.os, "geteuid", lambda: 0)
    ns = spawnns.SpawnNamespace.create(["/usr"])
    assert ns.fd is None
    ns.close()  # nothing to close: no error


def test_a_child_that_never_answers_fails_the_namespace_within_the_timeout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A child stuck before "ready" (e.g. in umount2 of a hung mount) must not hang the
    server's start: the creation fails after ``timeout_s`` and the child is killed. Without
    the timeout the read waits for the child (30 s here) instead of 0.5 s."""
    pid_file = str(tmp_path / "pid")
    script = f"import os, time\nopen({pid_file!r}, 'w').write(str(os.getpid()))\ntime.sleep(30)\n"
    monkeypatch.setattr(spawnns, "_CHILD", script)
    started = time.monotonic()
    with pytest.raises(OSError, match="no answer within"):
        spawnns.create_spawn_namespace(["/"], timeout_s=0.5)
    assert time.monotonic() - started < 10
    pid = int(Path(pid_file).read_text())
    assert not os.path.exists(f"/proc/{pid}")  # killed and reaped
