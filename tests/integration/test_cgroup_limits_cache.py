"""Real cgroups (cgroups.py): limits a group object already wrote are not written again, a group
made anew gets all of them, and removal is one rmdir per directory for a leaf, children first
for a tree."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coolcoding.sandbox.local import cgroups
from coolcoding.sandbox.local.cgroups import CgroupLimits, CgroupManager
from tests.integration.conftest_sandbox import requires_sandbox

pytestmark = [pytest.mark.sandbox, requires_sandbox]
MiB = 1024 * 1024


@pytest.fixture
def manager() -> Iterator[CgroupManager]:
    m = CgroupManager(f"cc-test-cglim-{uuid.uuid4().hex[:12]}", instance="srv")
    m.ensure_parent()
    yield m
    for name in m.leftovers():
        m.group(name).remove()
    m.remove_parent()


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The cgroup files written, by name."""
    seen: list[str] = []
    real = cgroups._write

    def spy(path: Path, value: str) -> None:
        seen.append(path.name)
        real(path, value)

    monkeypatch.setattr(cgroups, "_write", spy)
    return seen


def memory_limit(manager: CgroupManager, rel: str) -> int:
    cg = manager.group(rel)
    name = "memory.limit_in_bytes" if manager.version == 1 else "memory.max"
    return int((cg.dirs["memory"] / name).read_text())


def test_unchanged_limits_of_a_known_group_are_not_rewritten(
    manager: CgroupManager, writes: list[str]
) -> None:
    limits = CgroupLimits(memory_bytes=256 * MiB, pids=64, cpus=1.0)
    cg = manager.create("s1", limits, inner=True)
    first = list(writes)
    assert any(w.startswith("memory.") for w in first) and "pids.max" in first
    writes.clear()
    again = manager.create("s1", limits, inner=True, known=cg)
    assert again is cg
    assert writes == []  # a reused judge sandbox: the same owner's limits
    manager.create("s1", CgroupLimits(memory_bytes=128 * MiB, pids=64, cpus=1.0), inner=True,
                   known=cg)  # fmt: skip
    assert writes and all(w.startswith("memory.") for w in writes)
    assert memory_limit(manager, "s1") == 128 * MiB
    cg.remove()


def test_a_known_group_whose_directory_went_gets_every_limit_again(
    manager: CgroupManager, writes: list[str]
) -> None:
    """Fail closed: the cache never stands for a directory made anew (default: no limits)."""
    limits = CgroupLimits(memory_bytes=200 * MiB, pids=32)
    cg = manager.create("s2", limits)
    for d in cg.paths:  # removed behind the object's back
        os.rmdir(d)
    writes.clear()
    manager.create("s2", limits, known=cg)
    assert "pids.max" in writes
    assert memory_limit(manager, "s2") == 200 * MiB
    assert int((cg.dirs["pids"] / "pids.max").read_text()) == 32
    cg.remove()


def test_remove_takes_a_tree_children_first_and_a_leaf_without_listing(
    manager: CgroupManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager.create("s3", CgroupLimits(), inner=True)
    manager.create("s3/exec-1", CgroupLimits())
    manager.create("s3/exec-1/deeper", CgroupLimits())
    manager.create("s3/exec-2", CgroupLimits())
    leaf = manager.create("s3/exec-3", CgroupLimits(pids=8))
    listed: list[object] = []
    real_scandir = os.scandir

    def scandir(path: str) -> Any:
        listed.append(path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert leaf.try_remove()
    assert not any(os.path.exists(d) for d in leaf.paths)
    # kill_all lists each leaf once for processes; removal itself lists nothing
    assert len(listed) <= 1
    monkeypatch.undo()
    tree = manager.group("s3")
    assert tree.remove()
    assert not any(os.path.exists(d) for d in tree.paths)
