"""``cgroups.rmdir_tree``: the one tree removal behind ``Cgroup.remove``/``try_remove`` and the
judge sandbox wipe's ``reuse.clear_cgroup``, on real cgroups (each hierarchy of this host) with
a real process in a leaf: what is busy is reported, never skipped or raised, the rest goes."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from coolcoding.sandbox.base import SandboxError
from coolcoding.sandbox.local.cgroups import CgroupLimits, CgroupManager, rmdir_tree
from coolcoding.sandbox.local.reuse import WipeError, clear_cgroup

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creates cgroups (root)")


@pytest.fixture
def manager() -> Iterator[CgroupManager]:
    try:
        mgr = CgroupManager(f"coolcoding-test-rmtree-{secrets.token_hex(4)}")
        mgr.ensure_parent()
    except SandboxError as e:
        pytest.skip(f"no usable cgroups here: {e.log_message}")
    yield mgr
    mgr.group("s").remove(timeout_s=5)
    mgr.remove_parent()


def sleeper_in(paths: list[str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["sleep", "60"])
    for d in paths:
        Path(d, "cgroup.procs").write_text(str(proc.pid))
    return proc


def test_busy_groups_are_reported_deepest_first_and_the_others_removed(
    manager: CgroupManager,
) -> None:
    session = manager.create("s", CgroupLimits(pids=16), inner=True)
    busy_leaf = manager.create("s/exec-1", CgroupLimits(pids=16))
    idle_leaf = manager.create("s/exec-2", CgroupLimits(pids=16))
    proc = sleeper_in(busy_leaf.paths)
    try:
        for top, leaf, idle in zip(session.paths, busy_leaf.paths, idle_leaf.paths, strict=True):
            assert rmdir_tree(top, keep_top=True) == [leaf]  # the session itself left alone
            assert not os.path.exists(idle) and os.path.isdir(leaf)
            assert rmdir_tree(top) == [leaf, top]  # busy: it holds the busy leaf
    finally:
        proc.kill()
        proc.wait()
    for top in session.paths:
        assert rmdir_tree(top, keep_top=True) == []
        assert os.path.isdir(top) and not any(p.is_dir() for p in Path(top).iterdir())
        assert rmdir_tree(top) == [] and not os.path.exists(top)
        assert rmdir_tree(top) == []  # gone already: nothing to do, no error


def test_remove_and_the_wipe_kill_then_remove(manager: CgroupManager) -> None:
    session = manager.create("s", CgroupLimits(pids=16), inner=True)
    leaf = manager.create("s/exec-1", CgroupLimits(pids=16))
    proc = sleeper_in(leaf.paths)
    try:
        clear_cgroup(session)  # kills the sleeper, removes the leaf, keeps the session group
        assert proc.wait(5) == -9
        for top in session.paths:
            assert os.path.isdir(top) and not any(p.is_dir() for p in Path(top).iterdir())
        leaf = manager.create("s/exec-2", CgroupLimits(pids=16))
        proc = sleeper_in(leaf.paths)
        assert session.remove(timeout_s=5)
        assert proc.wait(5) == -9
        assert not any(os.path.exists(d) for d in session.paths)
        with pytest.raises(WipeError, match="the session cgroup is gone"):
            clear_cgroup(session)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
