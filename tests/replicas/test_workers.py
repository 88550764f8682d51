"""``coolcoding serve --workers 2``: real processes on one PostgreSQL database and a Redis of
their own, as the replicas tests run them (each worker is a replica with its own data dir)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_database, searchable
from tests.replicas.conftest import _reap_sandboxes, register
from tests.serve_helpers import free_port

pytestmark = pytest.mark.sandbox
WAIT_S = 60.0  # generous: the machine is shared and slow; no timing is asserted
HEADER = "x-coolcoding-worker"


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return sorted(out)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _until(check: Callable[[], object], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not reached in time: {what}"
        time.sleep(0.1)


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **kw: object) -> httpx.Response:
        # A new connection each time: the kernel picks the worker that accepts it.
        return httpx.get(f"{self.url}{path}", timeout=30, **kw)  # type: ignore[arg-type]

    def workers_seen(self, n: int = 60) -> set[str]:
        return {self.get("/api/health/").headers.get(HEADER, "") for _ in range(n)}

    def until_both_seen(self) -> None:
        seen: set[str] = set()

        def both() -> bool:
            seen.update(self.workers_seen(20))
            return seen == {"0", "1"}

        _until(both, "both workers")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        pytest.fail("redis-server is needed (scripts/setup.sh installs it)")
    root = searchable(tmp_path_factory.mktemp("workers"))
    db = make_database("postgres", root)
    redis_port = free_port()
    redis = subprocess.Popen(
        [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
        cwd=root,
    )
    parent = f"coolcoding-test-wrk-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        yield {
            **os.environ,
            "COOLCODING_ENVIRONMENT": "test",
            "COOLCODING_DATA_DIR": str(root / "data"),
            "COOLCODING_DATABASE_URL": db.url,
            "COOLCODING_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "COOLCODING_SANDBOX_POOL_SIZE": "0",
            "COOLCODING_SANDBOX_SESSION_POOL_SIZE": "0",
            "COOLCODING_REGISTER_RATE_LIMIT": "100000",
            "COOLCODING_LOGIN_RATE_LIMIT": "100000",
            "COOLCODING_SANDBOX_CGROUP_PARENT": parent,
        }
    finally:
        redis.terminate()
        redis.wait(timeout=20)
        _reap_sandboxes(parent, root)
        db.drop()


def _start(env: dict[str, str], *args: str, data: Path | None = None) -> Served:
    port = free_port()
    if data is None:  # each its own (a second supervisor on a data dir is refused)
        data = Path(env["COOLCODING_DATA_DIR"]) / f"serve-{port}"
        data.mkdir(parents=True)
    env = {**env, "COOLCODING_DATA_DIR": str(data)}
    log = data / f"serve-{port}.log"
    argv = [str(Path(sys.executable).parent / "coolcoding"), "serve"]
    argv += ["--host", "127.0.0.1", "--port", str(port), *args]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Served(proc, port, log)


def _wait_healthy(s: Served) -> None:
    def healthy() -> bool:
        assert s.proc.poll() is None, s.log.read_text(errors="replace")[-3000:]
        try:
            return s.get("/api/health/").status_code == 200
        except httpx.HTTPError:
            return False

    _until(healthy, "health")


@pytest.fixture(scope="module")
def served(env: dict[str, str]) -> Iterator[Served]:
    s = _start(env, "--workers", "2")
    try:
        _wait_healthy(s)
        _until(lambda: len(_children(s.proc.pid)) == 2, "two workers")
        yield s
    finally:
        if s.proc.poll() is None:
            s.proc.kill()  # the workers follow it (PR_SET_PDEATHSIG)
            s.proc.wait()


def test_both_workers_answer_on_the_one_port(served: Served) -> None:
    served.until_both_seen()
    data = Path(served.log).parent
    assert (data / "workers" / "0" / "server-id").read_text() != (
        data / "workers" / "1" / "server-id"
    ).read_text()


def test_a_save_through_one_worker_is_read_through_the_other(served: Served) -> None:
    user = register(served.url)
    cookies = {"cc_session": user.token}
    r = httpx.post(f"{served.url}/api/sessions/", json={"name": "w"}, cookies=cookies, timeout=30)
    assert r.status_code == 201, r.text
    sid = r.json()["uuid"]
    for n in range(3):
        content = f"print({n})  # {secrets.token_hex(4)}\n"
        saved_by: list[str] = []

        def save(content: str = content, saved_by: list[str] = saved_by) -> bool:
            r = httpx.post(
                f"{served.url}/api/workspace/{sid}/file/main.py",
                json={"content": content},
                cookies=cookies,
                timeout=30,
            )
            assert r.status_code in (200, 201), r.text
            saved_by.append(r.headers[HEADER])
            return True

        save()

        def read_elsewhere(content: str = content, by: str = saved_by[0]) -> bool:
            r = served.get(f"/api/workspace/{sid}/file/main.py", cookies=cookies)
            assert r.status_code == 200, r.text
            assert r.json()["content"] == content  # whichever worker answers
            return r.headers[HEADER] != by

        _until(read_elsewhere, "a read through the other worker")


def test_a_killed_worker_is_restarted_and_the_port_keeps_answering(served: Served) -> None:
    before = _children(served.proc.pid)
    assert len(before) == 2
    os.kill(before[0], signal.SIGKILL)
    for _ in range(20):  # the other worker answers meanwhile
        assert served.get("/api/health/").status_code == 200
    _until(
        lambda: len(after := _children(served.proc.pid)) == 2 and before[0] not in after,
        "a new worker",
    )
    served.until_both_seen()
    assert "died" in served.log.read_text()


def test_sigterm_stops_every_worker_and_exits_0(env: dict[str, str]) -> None:
    s = _start(env, "--workers", "2")
    try:
        _wait_healthy(s)
        _until(lambda: len(_children(s.proc.pid)) == 2, "two workers")
        workers = _children(s.proc.pid)
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(timeout=WAIT_S) == 0, s.log.read_text()[-3000:]
        _until(lambda: not any(_alive(p) for p in workers), "workers gone")
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def test_a_sigkilled_supervisor_takes_its_workers_with_it(env: dict[str, str]) -> None:
    s = _start(env, "--workers", "2")
    try:
        _wait_healthy(s)
        _until(lambda: len(_children(s.proc.pid)) == 2, "two workers")
        workers = _children(s.proc.pid)
        s.proc.kill()
        s.proc.wait()
        _until(lambda: not any(_alive(p) for p in workers), "workers gone")
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


@pytest.mark.parametrize(
    ("drop", "message"),
    [("COOLCODING_DATABASE_URL", "PostgreSQL"), ("COOLCODING_REDIS_URL", "COOLCODING_REDIS_URL")],
)
def test_workers_without_postgresql_or_redis_exit_2(
    env: dict[str, str], drop: str, message: str
) -> None:
    s = _start({k: v for k, v in env.items() if k != drop}, "--workers", "2")
    assert s.proc.wait(timeout=WAIT_S) == 2
    assert message in s.log.read_text()
    with pytest.raises(httpx.HTTPError):
        s.get("/api/health/")


def test_a_second_supervisor_on_the_same_data_dir_is_refused(
    served: Served, env: dict[str, str]
) -> None:
    s = _start(env, "--workers", "2", data=served.log.parent)
    assert s.proc.wait(timeout=WAIT_S) == 2
    assert "give each its own data dir" in s.log.read_text()
    assert served.get("/api/health/").status_code == 200
