"""cgroup v2 accounting keeps a memory.peak fd between ``reset_accounting`` and the read
(cgroups.py): every way out of that window closes it, so the server holds no fd per judged job.

The group here is a directory of plain files laid out like a v2 group: a plain file takes the
same O_RDWR open and "reset" write, so the fd handling runs without a v2 memory controller (this
machine binds memory to v1). tests/security/test_cgroup_accounting_fds.py runs real jobs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coolcoding.sandbox.local.cgroups import V2_CONTROLLERS, Cgroup
from coolcoding.sandbox.local.reuse import clear_cgroup

FILES = {
    "memory.peak": "4096\n",
    "cpu.stat": "usage_usec 5\n",
    "memory.events": "oom_kill 0\n",
    "pids.events": "max 0\n",
    "cgroup.procs": "",
}


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def fake_v2_group(d: Path) -> Cgroup:
    d.mkdir(exist_ok=True)
    for name, text in FILES.items():
        (d / name).write_text(text)
    return Cgroup(2, {c: d for c in V2_CONTROLLERS})


def peak_fds(d: Path) -> list[str]:
    """Fds of this process open on ``d``'s memory.peak."""
    target = str(d / "memory.peak")
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == target:
                out.append(fd)
        except OSError:
            continue
    return out


def test_a_second_reset_replaces_the_kept_fd(tmp_path: Path) -> None:
    """A pooled group reset twice before its peak is read: one fd, not two."""
    cg = fake_v2_group(tmp_path / "g")
    before = open_fds()
    for _ in range(20):
        cg.reset_accounting()
    assert len(peak_fds(tmp_path / "g")) == 1
    cg.memory_peak_bytes()  # (a plain file reads back the "reset" written into it)
    assert open_fds() == before


def test_remove_closes_a_peak_fd_nobody_read(tmp_path: Path) -> None:
    """An exec killed or failed before its peak was read: removing its group closes the fd."""
    d = tmp_path / "g"
    cg = fake_v2_group(d)
    before = open_fds()
    cg.reset_accounting()
    for name in FILES:  # a real group's files go with its directory
        (d / name).unlink()
    assert cg.remove(timeout_s=0.1)
    assert open_fds() == before


def test_close_is_idempotent_and_the_peak_is_read_from_the_file_afterwards(
    tmp_path: Path,
) -> None:
    cg = fake_v2_group(tmp_path / "g")
    before = open_fds()
    cg.reset_accounting()
    cg.close()
    cg.close()
    assert open_fds() == before
    (tmp_path / "g" / "memory.peak").write_text("4096\n")
    assert cg.memory_peak_bytes() == 4096  # no kept fd: the group's own memory.peak
    assert open_fds() == before


def test_a_failing_peak_read_still_closes_the_fd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cg = fake_v2_group(tmp_path / "g")
    before = open_fds()
    cg.reset_accounting()

    def fail(fd: int, n: int, offset: int) -> bytes:
        raise OSError("read error")

    monkeypatch.setattr(os, "pread", fail)
    assert cg.memory_peak_bytes() is None
    monkeypatch.undo()
    assert open_fds() == before


def test_wiping_a_reused_session_group_keeps_no_fd(tmp_path: Path) -> None:
    """reuse.clear_cgroup resets the session group once per job (and its sandbox then waits in
    the reuse pool): no fd kept, where there used to be one per reused job."""
    d = tmp_path / "session"
    cg = fake_v2_group(d)
    before = open_fds()
    for i in range(30):
        (d / f"exec-{i}").mkdir()
        clear_cgroup(cg)
    assert open_fds() == before
