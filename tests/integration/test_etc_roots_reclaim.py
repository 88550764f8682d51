"""A SIGKILLed server's generated /etc root (in a tmpfs, i.e. memory) is removed by another
server once nothing uses it, even when the killed server's data dir never starts again (its tag
never comes back to reclaim it). Real ``coolcoding serve`` processes, a real session sandbox
that outlives its server, real mounts; the roots live in a tmpfs dir of this test's own.

Without the reclaim of other servers' dead roots, every killed test server left its root
(~MBs of /etc copies and templates) in /dev/shm for as long as the host ran.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coolcoding.sandbox.local.agent_launch import (
    LOCKING_MARK,
    agent_copy_name,
    agent_package_copy,
    reclaim_agent_copies,
)
from coolcoding.sandbox.local.etcroots import OWNER, owner_line, reclaim_dead_etc_roots
from tests.conftest import make_database, searchable
from tests.integration.test_sandbox_outlives_server import login, sandbox_pids
from tests.serve_helpers import ServeProcess, run_file, serve_log

pytestmark = pytest.mark.sandbox


@pytest.fixture
def shm() -> Iterator[Path]:
    """A dir of this test's own in the host's tmpfs (the default /etc root is /dev/shm)."""
    path = Path(tempfile.mkdtemp(prefix="cc-test-etcroots-", dir="/dev/shm"))
    path.chmod(0o755)  # the sandbox uid resolves paths under it (the agent's code copy)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def kill_pids(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_killed_servers_etc_root_goes_once_its_sandbox_is_gone(tmp_path: Path, shm: Path) -> None:
    dirs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        dirs.append(searchable(tmp_path / name))
    db_a, db_b = (make_database("sqlite", d) for d in dirs)
    common = {"sandbox_etc_root": str(shm), "sandbox_keep_on_shutdown": "true",
              "sandbox_session_pool_size": "0"}  # fmt: skip
    env_a = {**common, "database_url": db_a.url,
             "sandbox_cgroup_parent": f"coolcoding-test-etcroot-a-{secrets.token_hex(4)}"}  # fmt: skip
    env_b = {**common, "database_url": db_b.url,
             "sandbox_cgroup_parent": f"coolcoding-test-etcroot-b-{secrets.token_hex(4)}"}  # fmt: skip
    srv = ServeProcess(dirs[0], **env_a)
    sid = ""
    try:
        client, _ = login(srv)
        r = client.post("/api/sessions/", json={"name": "etcroot"})
        sid = str(r.json()["uuid"])
        out = run_file(client, sid, "hi.py", "print('hi')\n")
        assert out["stdout"] == "hi\n", (out, serve_log(dirs[0]))
        (root_a,) = shm.glob("cc-etc-*")
        assert (root_a / sid / "passwd").is_file() and (root_a / OWNER).is_file()
        assert len(os.listdir(root_a)) > 2  # the session's /etc, the owner file and more
        srv.kill()  # no shutdown code: its root stays, its session sandbox runs on
        pids = sandbox_pids(sid)
        assert pids, serve_log(dirs[0])

        # Another server (another data dir, another tag) starts: everything of the dead root
        # but the running sandbox's bound /etc goes, and that sandbox still reads its /etc.
        # An older code version's agent copy, which nothing uses, goes too; this version's
        # copy, which the running sandbox's agent runs from, stays.
        old_copy = shm / "cc-agent-0123456789abcdef"
        (old_copy / "coolcoding").mkdir(parents=True)
        (old_copy / LOCKING_MARK).touch()
        other = ServeProcess(dirs[1], **env_b)
        try:
            assert sorted(os.listdir(root_a)) == sorted([OWNER, sid]), serve_log(dirs[1])
            agent = min(pids)
            assert Path(f"/proc/{agent}/root/etc/passwd").read_text().strip()
            assert not old_copy.exists() and (shm / agent_copy_name() / "coolcoding").is_dir()
        finally:
            other.terminate()

        # The sandbox ends (its server never comes back): the next start removes the root.
        kill_pids(sandbox_pids(sid, sleeps=True))
        deadline = time.monotonic() + 30
        while sandbox_pids(sid, sleeps=True):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        other = ServeProcess(dirs[1], **env_b)
        other.terminate()
        assert not root_a.exists(), serve_log(dirs[1])
        assert [p.name for p in shm.glob("cc-etc-*")] == []  # b's own went at its shutdown
    finally:
        srv.kill()
        kill_pids(sandbox_pids(sid, sleeps=True) if sid else set())
        ServeProcess(dirs[0], **env_a).terminate()  # its start-up clean-up: cgroups, images
        db_a.drop()
        db_b.drop()


def held_bind(source: Path) -> subprocess.Popen[str]:
    """A process in a mount namespace of its own holding a bind mount of ``source`` (what a
    sandbox's bwrap does with its /etc dir)."""
    proc = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         f'mount --bind "{source}" /mnt && echo bound && exec sleep 600'],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == "bound\n"
    return proc


def dead_root(shm: Path, name: str, owner: str) -> Path:
    root = shm / name
    root.mkdir()
    (root / OWNER).write_text(owner)
    for child in ("s1", "s2", "templates"):
        (root / child).mkdir()
        (root / child / "passwd").write_text("x")
    return root


def test_only_provably_dead_roots_of_other_servers_are_touched(shm: Path) -> None:
    pidns, _, _ = owner_line().split()
    mine = shm / f"cc-etc-{os.getpid()}-tag00001-mine"
    mine.mkdir()
    # pid above any pid_max: no such process, in our pid namespace
    dead = dead_root(shm, "cc-etc-999999999-tag00002-dead", f"{pidns} 999999999 1\n")
    # this very process, but its start time says another process had the pid: dead too
    reused = dead_root(shm, f"cc-etc-{os.getpid()}-tag00003-reused", f"{pidns} {os.getpid()} 1\n")
    # alive: this process, its real start time
    alive = dead_root(shm, f"cc-etc-{os.getpid()}-tag00004-alive", owner_line())
    # another pid namespace (a server in another container sharing the tmpfs): unknowable
    elsewhere = dead_root(shm, "cc-etc-999999999-tag00005-ns", f"{int(pidns) + 1} 999999999 1\n")
    # an older build's root, without an owner file: left alone
    legacy = dead_root(shm, "cc-etc-999999999-tag00006-old", "")
    (legacy / OWNER).unlink()
    # a removal cut short after the owner file went: empty, its pid dead
    emptied = shm / "cc-etc-999999999-tag00007-cut"
    emptied.mkdir()
    holder = held_bind(dead / "s1")
    try:
        reclaim_dead_etc_roots(shm, "tag00001", (), mine)
        assert sorted(os.listdir(dead)) == [OWNER, "s1"]  # the bound one stays
        assert (dead / "s1" / "passwd").read_text() == "x"
        assert not reused.exists() and not emptied.exists()
        for kept in (alive, elsewhere, legacy):
            assert sorted(os.listdir(kept)) == sorted([OWNER, "s1", "s2", "templates"]) or (
                kept is legacy and sorted(os.listdir(kept)) == ["s1", "s2", "templates"]
            )
    finally:
        holder.kill()
        holder.wait()
    reclaim_dead_etc_roots(shm, "tag00001", (), mine)
    assert not dead.exists()
    assert mine.exists() and alive.exists() and elsewhere.exists() and legacy.exists()


def test_a_root_bound_whole_is_left_alone(shm: Path) -> None:
    pidns, _, _ = owner_line().split()
    dead = dead_root(shm, "cc-etc-999999999-tag00002-whole", f"{pidns} 999999999 1\n")
    holder = held_bind(dead)
    try:
        reclaim_dead_etc_roots(shm, "tag00001", (), shm / "none")
        assert sorted(os.listdir(dead)) == sorted([OWNER, "s1", "s2", "templates"])
    finally:
        holder.kill()
        holder.wait()


def held_lock(path: Path) -> subprocess.Popen[str]:
    """Another process holding a shared flock on ``path`` (a live server using its copy)."""
    code = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n"
        "fcntl.flock(fd, fcntl.LOCK_SH)\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen(["python3", "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_other_versions_agent_copies_go_once_nothing_uses_them(shm: Path) -> None:
    """Agent code copies (5 MB each, per code version, in memory): a copy no live server holds
    and no mount uses is removed; one a server holds (another process's lock, or this
    process's own ``agent_package_copy``), one a sandbox has bound, this version's, an older
    build's (no mark: its servers hold no lock) and anything not named like a copy stay."""
    kinds = ["free", "held", "bound", "mine", "unmarked"]
    names = {k: f"cc-agent-{i:016x}" for i, k in enumerate(kinds)}
    for key, name in names.items():
        (shm / name / "coolcoding").mkdir(parents=True)
        if key != "unmarked":  # an older build's copy has no mark: its servers hold no lock
            (shm / name / LOCKING_MARK).touch()
    odd = shm / "cc-agent-tmp-x1"
    odd.mkdir()
    ours = Path(agent_package_copy(shm)).parent  # made and held by this process
    holder = held_lock(shm / names["held"])
    binder = held_bind(shm / names["bound"] / "coolcoding")
    try:
        assert reclaim_agent_copies(shm, keep=names["mine"]) == 1
        assert not (shm / names["free"]).exists()
        for key in ("held", "bound", "mine", "unmarked"):
            assert (shm / names[key] / "coolcoding").is_dir(), key
        assert odd.exists() and (ours / "coolcoding").is_dir()
    finally:
        for proc in (holder, binder):
            proc.kill()
            proc.wait()
    assert reclaim_agent_copies(shm, keep=names["mine"]) == 2  # nobody holds nor binds them
    left = [names["mine"], names["unmarked"], odd.name, ours.name]
    assert sorted(p.name for p in shm.iterdir()) == sorted(left)
    assert (ours / LOCKING_MARK).is_file()
