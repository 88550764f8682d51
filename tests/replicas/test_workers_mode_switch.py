"""Switching a data dir between ``coolcoding serve`` and ``coolcoding serve --workers 2`` (real
processes, PostgreSQL and a Redis of their own; modeswitch.py): what a SIGKILLed process of one
mode left (sandbox processes, cgroups, workspace image mounts and their loop devices) is gone
once the other mode has started, in both orders; a live process of the other mode is left
alone."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.replicas.conftest import register
from tests.replicas.test_workers import (
    WAIT_S,
    Served,
    _alive,
    _children,
    _start,
    _until,
    _wait_healthy,
    env,  # noqa: F401 (the module's PostgreSQL + Redis environment, a fixture)
)

pytestmark = pytest.mark.sandbox
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass
class Leftovers:
    """What one server identity (one data dir) has on the host."""

    server: str
    pids: set[int]
    cgroups: list[Path]
    mounts: list[str]
    loops: list[tuple[str, str]]  # (device, its image)

    def remaining(self) -> dict[str, list[object]]:
        """What is still there (empty: all gone)."""
        mounts, loops = _mounts(), _loops()
        left: dict[str, list[object]] = {
            "pids": [p for p in self.pids if _alive(p)],
            "cgroups": [d for d in self.cgroups if d.exists()],
            "mounts": [m for m in self.mounts if m in mounts],
            # by device and image: a freed loop device is soon another image's
            "loops": [lo for lo in self.loops if loops.get(lo[0]) == lo[1]],
        }
        return {k: v for k, v in left.items() if v}

    def until_gone(self) -> None:
        deadline = time.monotonic() + WAIT_S
        while left := self.remaining():
            assert time.monotonic() < deadline, (
                f"{self.server}: still there: {left}; mounted in: {_mounted_in(self.mounts)}"
            )
            time.sleep(0.1)

    def intact(self) -> bool:
        """Still running (its sandbox processes; a short-lived helper among them may end)."""
        return any(_alive(p) for p in self.pids) and all(d.is_dir() for d in self.cgroups)


def _mounted_in(points: list[str]) -> list[str]:
    """The processes whose mount namespace still has one of ``points`` (pid and command)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if any(p in (proc / "mountinfo").read_text() for p in points):
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ")[:100]
                found.append(f"{proc.name}: {cmd.decode(errors='replace')}")
        except OSError:
            continue
    return found


def _mounts() -> set[str]:
    return {line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}


def _loops() -> dict[str, str]:
    out = {}
    for dev in Path("/sys/block").glob("loop*"):
        try:
            out[dev.name] = (dev / "loop" / "backing_file").read_text().strip()
        except OSError:
            continue
    return out


def leftovers(data: Path, environ: dict[str, str]) -> Leftovers:
    server = (data / "server-id").read_text().strip()
    parent = environ["COOLCODING_SANDBOX_CGROUP_PARENT"]
    cgroups = [
        h / parent / server for h in CGROUP_ROOT.iterdir() if (h / parent / server).is_dir()
    ] or ([CGROUP_ROOT / parent / server] if (CGROUP_ROOT / parent / server).is_dir() else [])
    pids = {
        int(p)
        for cg in cgroups
        for procs in cg.rglob("cgroup.procs")
        for p in procs.read_text().split()
    }
    ws = str(data.resolve() / "workspaces") + "/"
    mounts = [m for m in _mounts() if m.startswith(ws)]
    state = str(data.resolve() / "sandbox-state") + "/"
    loops = [(lo, f) for lo, f in _loops().items() if f.startswith(state)]
    return Leftovers(server, pids, cgroups, mounts, loops)


def started_sandbox(s: Served) -> tuple[str, dict[str, str]]:
    """A user's session whose sandbox runs (through ``s``), and the user's cookies."""
    user = register(s.url)
    cookies = {"cc_session": user.token}
    r = httpx.post(f"{s.url}/api/sessions/", json={"name": "m"}, cookies=cookies, timeout=30)
    assert r.status_code == 201, r.text
    sid = str(r.json()["uuid"])
    r = httpx.post(f"{s.url}/api/sessions/{sid}/sandbox/start", cookies=cookies, timeout=120)
    assert r.status_code == 200, r.text
    return sid, cookies


@pytest.fixture
def data(env: dict[str, str]) -> Path:  # noqa: F811
    d = Path(env["COOLCODING_DATA_DIR"]) / f"switch-{secrets.token_hex(4)}"
    d.mkdir(parents=True)
    return d


@pytest.fixture
def procs() -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for s in started:
        for pid in _children(s.proc.pid):
            os.kill(pid, signal.SIGKILL)
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def _serve(environ: dict[str, str], data: Path, procs: list[Served], *args: str) -> Served:
    # one pooled sandbox per process (a zygote and an image of its own) among the leftovers
    s = _start({**environ, "COOLCODING_SANDBOX_SESSION_POOL_SIZE": "1"}, *args, data=data)
    procs.append(s)
    _wait_healthy(s)
    if args:
        _until(lambda: len(_children(s.proc.pid)) == 2, "two workers")
    return s


def _sigkill(s: Served) -> None:
    """No shutdown hook runs anywhere: the workers first (their supervisor's death would send
    them SIGTERM, a graceful stop), then the process itself."""
    for pid in _children(s.proc.pid):
        os.kill(pid, signal.SIGKILL)
    s.proc.kill()
    s.proc.wait()


def _worker_dirs(data: Path) -> list[Path]:
    return sorted(p for p in (data / "workers").iterdir() if p.name.isdigit())


def test_a_killed_serves_leftovers_are_reclaimed_by_workers(
    env: dict[str, str],  # noqa: F811
    data: Path,
    procs: list[Served],
) -> None:
    s = _serve(env, data, procs)
    sid, cookies = started_sandbox(s)
    left = leftovers(data, env)
    assert left.pids and left.cgroups and left.mounts and left.loops, left
    _sigkill(s)
    assert left.intact()  # sandboxes outlive their server
    w = _serve(env, data, procs, "--workers", "2")
    left.until_gone()
    # its row no longer says running on a server that is gone (no wait for a lease to lapse)
    r = httpx.get(f"{w.url}/api/sessions/{sid}", cookies=cookies, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["sandbox_status"] == "stopped"


def test_killed_workers_leftovers_are_reclaimed_by_serve(
    env: dict[str, str],  # noqa: F811
    data: Path,
    procs: list[Served],
) -> None:
    w = _serve(env, data, procs, "--workers", "2")
    started_sandbox(w)
    lefts = [leftovers(d, env) for d in _worker_dirs(data)]
    assert len(lefts) == 2 and all(lo.pids and lo.cgroups for lo in lefts), lefts
    _sigkill(w)
    assert all(lo.intact() for lo in lefts)
    _serve(env, data, procs)
    for lo in lefts:
        lo.until_gone()


def test_a_live_serve_is_not_disturbed_by_workers_starting(
    env: dict[str, str],  # noqa: F811
    data: Path,
    procs: list[Served],
) -> None:
    s = _serve(env, data, procs)
    started_sandbox(s)
    left = leftovers(data, env)
    assert left.pids
    _serve(env, data, procs, "--workers", "2")
    assert left.intact() and all(m in _mounts() for m in left.mounts)
    assert s.get("/api/health/").status_code == 200


def test_live_workers_are_not_disturbed_by_serve_starting(
    env: dict[str, str],  # noqa: F811
    data: Path,
    procs: list[Served],
) -> None:
    w = _serve(env, data, procs, "--workers", "2")
    started_sandbox(w)
    lefts = [leftovers(d, env) for d in _worker_dirs(data)]
    assert all(lo.pids for lo in lefts)
    _serve(env, data, procs)
    assert all(lo.intact() for lo in lefts)
    assert all(m in _mounts() for lo in lefts for m in lo.mounts)
    assert w.get("/api/health/").status_code == 200


def test_a_judge_worker_stopping_leaves_a_live_serves_sandboxes_alone(
    env: dict[str, str],  # noqa: F811
    data: Path,
    procs: list[Served],
) -> None:
    """``coolcoding worker`` on the data dir of a live ``serve``: it used to be the same server
    (one ``server-id``), and its graceful stop's clean-up removed the server's sandboxes."""
    environ = {**env, "COOLCODING_EXEC_QUEUE": "database", "COOLCODING_DATA_DIR": str(data)}
    s = _serve(environ, data, procs)
    started_sandbox(s)
    left = leftovers(data, env)
    assert left.pids and left.mounts
    log = data / "judge-worker.log"
    argv = [str(Path(sys.executable).parent / "coolcoding"), "worker", "--slots", "1"]
    with log.open("wb") as out:
        worker = subprocess.Popen(argv, env=environ, stdout=out, stderr=subprocess.STDOUT)
    try:
        _until(lambda: "ready" in log.read_text(errors="replace"), "the judge worker ready")
        assert left.intact()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, log.read_text(errors="replace")[-3000:]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert left.intact() and all(m in _mounts() for m in left.mounts)
    # its own identity: a dir of its own under the data dir, not the server's
    own = data / "judge-workers" / "0" / "server-id"
    assert own.read_text() != (data / "server-id").read_text()


def test_files_a_killed_serves_sandbox_wrote_reach_the_database_on_a_switch(
    env: dict[str, str],  # noqa: F811
    data: Path,
    procs: list[Served],
) -> None:
    """A file written in the sandbox after its server was SIGKILLed (by a program in the
    sandbox, which outlives the server: here written into the mounted workspace from the host)
    was never synced. Started in the other mode, the data dir's reclaim takes the sandbox's
    files as newer into the database (as a restart of the same mode does) before it stops the
    sandbox: the file is not lost."""
    s = _serve(env, data, procs)
    sid, cookies = started_sandbox(s)
    ws = [m for m in _mounts() if m.startswith(str(data.resolve() / "workspaces")) and sid in m]
    assert len(ws) == 1, ws
    _sigkill(s)
    owner = os.stat(ws[0])
    late = Path(ws[0]) / "late.txt"
    late.write_text("written after the server died\n")
    os.chown(late, owner.st_uid, owner.st_gid)
    left = leftovers(data, env)
    w = _serve(env, data, procs, "--workers", "2")
    left.until_gone()
    r = httpx.get(f"{w.url}/api/workspace/{sid}/file/late.txt", cookies=cookies, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["content"] == "written after the server died\n"
