"""A real ``coolcoding serve`` SIGKILLed in the middle of an interactive judge case (both the
interactor and the submission running in their sandboxes, joined by host pipes).

Checked: no process of either sandbox outlives the server (bwrap's ``--die-with-parent``), no
other process holds an end of the two pipes, the next start on the same data dir leaves none
of the job's sandbox directories, /etc dirs or cgroups behind (orphan clean-up), and the job
ends as the queue's contract says: the in-memory queue finishes a job left "running" as
``internal_error`` ("interrupted by a server restart"); the database queue's lapsed lease puts
it back and the restarted server's worker runs it again to its verdict (attempt 2).
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_database, searchable
from tests.integration import interactive_programs as game
from tests.integration.test_judge_fold import db_run
from tests.serve_helpers import ServeProcess, serve_log

pytestmark = pytest.mark.sandbox
TIMEOUT = 60.0
HOLD_S = 25.0  # from the submission: the interactor's pause before its first answer
KILLED_WITHIN_S = 10.0  # the sandboxes end this soon after the server (well before the pause)


def slow_interactor(until: float) -> str:
    """The guessing game's interactor, which sends N, then sleeps until the time ``until``
    before it plays: both programs are mid-case (the submission waits for its first answer)
    until then. A time, not a length: a second try after a restart waits less, and finishes."""
    hold = f"import time\ntime.sleep(max(0.0, {until!r} - time.time()))"
    return game.GUESS_INTERACTOR.replace("print(n, flush=True)", f"print(n, flush=True)\n{hold}")


@dataclass
class Platform:
    data: Path
    env: dict[str, str]
    cgroup_parent: str


@pytest.fixture(params=["memory-sqlite", "memory-postgres", "database-postgres"])
def platform(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Platform]:
    queue, backend = str(request.param).split("-")
    (tmp_path / "data").mkdir()
    data = searchable(tmp_path / "data")
    db = make_database(backend, data)
    parent = f"coolcoding-test-ikill-{secrets.token_hex(4)}"
    env = {
        "database_url": db.url,
        "sandbox_cgroup_parent": parent,
        "sandbox_keep_on_shutdown": "false",
        "exec_queue": queue,
        "sandbox_session_pool_size": "0",  # no session sandbox: this server's are the job's
    }
    if queue == "database":
        env |= {"exec_worker_lease_s": "3", "exec_queue_poll_s": "0.2"}
    yield Platform(data, env, parent)
    db.drop()


def job_processes(parent: str) -> dict[int, str]:
    """Every host process in a judge sandbox's cgroup (``eph-*``) under ``parent``: pid -> its
    cgroup path."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cgroup = Path(f"/proc/{entry}/cgroup").read_text()
            except OSError:
                continue
            mine = [
                line for line in cgroup.splitlines() if re.search(f"/{parent}/[^/]+/eph-", line)
            ]
            if mine:  # cgroup v1: one line per hierarchy; v2: the one line
                found[int(entry)] = mine[0]
    return found


def programs(parent: str) -> dict[str, int]:
    """The sandboxes under ``parent`` running python (the interactor, the submission): the
    ephemeral sandbox's name -> the python process's pid."""
    out = {}
    for pid, cgroup in job_processes(parent).items():
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        m = re.search(r"/(eph-[0-9a-f]+)/", cgroup)
        if m and comm.startswith("python"):
            out[m.group(1)] = pid
    return out


def pipe_inodes(pid: int) -> set[str]:
    """The pipes on ``pid``'s fds 0 and 1 (``pipe:[inode]``)."""
    links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in (0, 1)}
    return {link for link in links if link.startswith("pipe:")}


def holders(inodes: set[str]) -> list[tuple[int, str]]:
    """Every (pid, pipe) of a host process holding one of the pipes ``inodes``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{entry}/fd/{fd}")
            except OSError:
                continue
            if link in inodes:
                found.append((int(entry), link))
    return found


def etc_dirs_of(pid: int) -> list[str]:
    """The server process ``pid``'s /etc roots in /dev/shm (etcroots.py: cc-etc-<pid>-...)."""
    return [e for e in os.listdir("/dev/shm") if e.startswith(f"cc-etc-{pid}-")]


def cgroup_leftovers(parent: str, names: Collection[str] | None = None) -> list[str]:
    """The sandbox cgroups (``eph-*``; only ``names`` if given) under ``parent``, in every
    hierarchy (cgroup v1: one per controller; v2: the one)."""
    root = Path("/sys/fs/cgroup")
    found = []
    for top in [*root.glob(f"*/{parent}"), *root.glob(parent)]:
        found += [str(p) for p in top.glob("*/eph-*") if names is None or p.name in names]
    return found


def wait_until(what: str, ok: Callable[[], object], data: Path, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, f"{what}: {serve_log(data)[-3000:]}"
        time.sleep(0.05)


def test_a_server_killed_mid_interactive_case_leaves_nothing_and_ends_the_job(
    platform: Platform,
) -> None:
    data, parent = platform.data, platform.cgroup_parent
    srv = ServeProcess(data, **platform.env)
    try:
        client = httpx.Client(base_url=srv.base_url, timeout=30)
        name = f"k{secrets.token_hex(5)}"
        r = client.post("/api/users/register", json={
            "username": name, "email": f"{name}@example.com", "password": "correct horse b"})  # fmt: skip
        assert r.status_code == 201, r.text
        client.headers["Authorization"] = f"Bearer {r.json()['token']}"
        body = {
            "language": "python",
            "source": game.PY_BINARY_SEARCH,
            "testcases": [{"stdin": "100 7", "expected_output": "42"}],
            "checker": {"type": "interactive", "language": "python",
                        "source": slow_interactor(time.time() + HOLD_S)},
            "limits": {"wall_s": 30},
        }  # fmt: skip
        r = client.post("/api/executions", json=body)
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]

        # Mid-case: the interactor and the submission each run python in their own sandbox.
        wait_until("both programs running", lambda: len(programs(parent)) == 2, data)
        running = programs(parent)
        pipes = set().union(*(pipe_inodes(pid) for pid in running.values()))
        assert len(pipes) == 2, pipes  # the two pipes between them, nothing else
        assert client.get(f"/api/executions/{job_id}").json()["status"] == "running"
        server_pid = srv.proc.pid
        assert etc_dirs_of(server_pid)

        srv.kill()

        # Nothing of the sandboxes outlives the server, and no process holds the pipes.
        wait_until("sandbox processes outlived the server", lambda: not job_processes(parent),
                   data, timeout=KILLED_WITHIN_S)  # fmt: skip
        assert holders(pipes) == []
        # What the dead server left of the job's two sandboxes: their (empty) cgroups, their
        # directories (workspaces) and its /etc root.
        state = data / "sandbox-state"

        def dirs_left() -> set[str]:
            found: set[str] = set()
            for d in (state / "ephemeral", state / "ephemeral-trash"):
                found |= set(running) & set(os.listdir(d) if d.is_dir() else [])
            return found

        assert len(cgroup_leftovers(parent, running)) >= 2 and dirs_left() == set(running)
        assert etc_dirs_of(server_pid)

        srv = ServeProcess(data, **platform.env)
        # The next start on the data dir removed them all (orphan clean-up).
        assert cgroup_leftovers(parent, running) == []
        assert dirs_left() == set()
        assert etc_dirs_of(server_pid) == []

        def finished() -> bool:
            return bool(client.get(f"/api/executions/{job_id}").json()["status"] == "finished")

        client.base_url = httpx.URL(srv.base_url)
        wait_until("the job finished", finished, data, timeout=TIMEOUT)
        done = client.get(f"/api/executions/{job_id}").json()
        if platform.env["exec_queue"] == "memory":
            assert done["verdict"] == "internal_error", done
            assert done["message"] == "interrupted by a server restart", done
        else:  # run again by the restarted server's worker, to the end this time
            assert done["verdict"] == "accepted", done
            # The only job: its second try wrote the verdict.
            assert db_run(platform.env["database_url"], "SELECT attempt FROM executions") == [(2,)]
        # The second server's own sandboxes are gone too once the job is over.
        wait_until("sandboxes after the job", lambda: not job_processes(parent), data)
        client.close()
    finally:
        if srv.proc.poll() is not None:  # killed, and the test failed before the restart:
            srv = ServeProcess(data, **platform.env)  # its start removes the leftovers
        srv.terminate()
    assert cgroup_leftovers(parent) == []
