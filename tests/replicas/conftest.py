"""Three real ``coolcoding serve`` replicas on one PostgreSQL database and a Redis of their own,
behind a real nginx (Debian's, our own config and prefix on free loopback ports, never the system
service). Each replica has its own data dir: in this step a local sandbox belongs to the replica
that started it (it dies with it), so replicas must not share sandboxes' cgroups or orphan cleanup.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import websockets

from tests.conftest import make_database, searchable
from tests.sandbox_helpers import COMMAND_TIMEOUT, Term
from tests.serve_helpers import free_port

REPO = Path(__file__).resolve().parents[2]
LEASE_TTL_S = 3.0
pytestmark = pytest.mark.sandbox


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/api/health/", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not start: {log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)


@dataclass
class Replica:
    """One ``coolcoding serve`` process; restartable on the same port and data dir."""

    name: str
    data_dir: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.data_dir / f"serve-{len(self.logs)}.log"
        self.logs.append(log)
        argv = [str(Path(sys.executable).parent / "coolcoding"), "serve"]
        argv += ["--host", "127.0.0.1", "--port", str(self.port)]
        with log.open("wb") as out:
            self.proc = subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        _wait_healthy(self.url, self.proc, log)

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, no lease is given back."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class Cluster:
    replicas: list[Replica]
    lb_url: str
    lb_ws_url: str
    db_url: str = ""

    async def lease_holder(self, session_uuid: str) -> Replica | None:
        """The replica whose live lease holds the session (from the ``leases`` table)."""
        conn = await asyncpg.connect(self.db_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            row = await conn.fetchrow(
                "SELECT address FROM leases WHERE name = $1 AND expires_at >= $2",
                f"session:{session_uuid}",
                datetime.now(UTC),
            )
        finally:
            await conn.close()
        if row is None:
            return None
        return next((r for r in self.replicas if r.url == row["address"]), None)


def _render_nginx(prefix: Path, listen: str, ports: list[int]) -> Path:
    servers = " ".join(f"server 127.0.0.1:{p};" for p in ports)
    conf = (REPO / "deploy/nginx/coolcoding.conf").read_text()
    conf = conf.replace("__LISTEN__", listen).replace("__SERVERS__", servers)
    path = prefix / "nginx.conf"
    path.write_text(conf)
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with make_cluster(tmp_path_factory) as c:
        yield c


@contextlib.contextmanager
def make_cluster(
    tmp_path_factory: pytest.TempPathFactory, n: int = 3, extra_env: dict[str, str] | None = None
) -> Iterator[Cluster]:
    """``n`` replicas (with ``extra_env`` over the defaults) behind nginx, torn down at exit."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    redis_server = shutil.which("redis-server")
    if not Path(nginx).exists() or redis_server is None:
        pytest.fail("nginx and redis-server are needed (scripts/setup.sh installs them)")
    root = searchable(tmp_path_factory.mktemp("replicas"))
    db = make_database("postgres", root)
    redis_port = free_port()
    redis = subprocess.Popen(
        [
            redis_server,
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            root,
        ],
        stdout=subprocess.DEVNULL,
    )
    parent = f"coolcoding-test-rep-{os.getpid()}-{secrets.token_hex(3)}"
    replicas: list[Replica] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(n):
            data_dir = root / f"replica-{i}"
            data_dir.mkdir()
            port = free_port()
            env = {
                **os.environ,
                "COOLCODING_ENVIRONMENT": "test",
                "COOLCODING_DATA_DIR": str(data_dir),
                "COOLCODING_DATABASE_URL": db.url,
                "COOLCODING_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                "COOLCODING_SANDBOX_POOL_SIZE": "0",
                "COOLCODING_REGISTER_RATE_LIMIT": "100000",
                "COOLCODING_LOGIN_RATE_LIMIT": "100000",
                "COOLCODING_SANDBOX_CGROUP_PARENT": parent,
                "COOLCODING_LEASE_TTL_S": str(LEASE_TTL_S),
                "COOLCODING_LEASE_RENEW_INTERVAL_S": "1",
                "COOLCODING_REPLICA_ADDRESS": f"http://127.0.0.1:{port}",
                **(extra_env or {}),
            }
            replicas.append(Replica(f"r{i}", data_dir, port, env))
        # The first one migrates alone (the others would race on an empty database).
        for r in replicas:
            r.start()
        prefix = root / "nginx"
        prefix.mkdir()
        lb_port = free_port()
        conf = _render_nginx(prefix, f"127.0.0.1:{lb_port}", [r.port for r in replicas])
        lb = subprocess.Popen(
            [nginx, "-p", str(prefix), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=(prefix / "stderr.log").open("wb"),
        )
        procs.append(lb)
        _wait_healthy(f"http://127.0.0.1:{lb_port}", lb, prefix / "stderr.log")
        yield Cluster(replicas, f"http://127.0.0.1:{lb_port}", f"ws://127.0.0.1:{lb_port}", db.url)
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=20)
        for r in replicas:
            r.stop()
        redis.terminate()
        redis.wait(timeout=20)
        _reap_sandboxes(parent, root)
        db.drop()


def _reap_sandboxes(cgroup_parent: str, root: Path) -> None:
    """The replicas leave their sandboxes running (they outlive their processes, by design);
    the test run does not: kill every process under the cgroup parent, remove the cgroups and
    unmount the workspace images under ``root``."""
    trees = [
        d / cgroup_parent for d in Path("/sys/fs/cgroup").iterdir() if (d / cgroup_parent).is_dir()
    ]
    for _ in range(3):
        for tree in trees:
            for procs in tree.rglob("cgroup.procs"):
                for pid in procs.read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.2)
    for tree in trees:
        for d in sorted((p for p in tree.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            tree.rmdir()
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = line.split()[1]
        if target.startswith(str(root)):
            subprocess.run(["umount", "-l", target], check=False)


@dataclass
class User:
    token: str

    def client(self, base_url: str) -> httpx.Client:
        return httpx.Client(base_url=base_url, timeout=30, cookies={"cc_session": self.token})


def register(base_url: str) -> User:
    return register_as(base_url, f"rep{secrets.token_hex(5)}")


def register_as(base_url: str, name: str) -> User:
    r = httpx.post(
        f"{base_url}/api/users/register",
        json={
            "username": name,
            "email": f"{name}@example.com",
            "password": "correct horse battery",
        },
        timeout=30,
    )
    assert r.status_code == 201, r.text
    return User(r.json()["token"])


def new_session(base_url: str, user: User) -> str:
    with user.client(base_url) as c:
        r = c.post("/api/sessions/", json={"name": "replicas"})
        assert r.status_code == 201, r.text
        return str(r.json()["uuid"])


async def open_terminal(ws_url: str, user: User, sid: str, tid: str = "t1") -> Term:
    url = f"{ws_url}/api/sessions/{sid}/terminals/{tid}?cols=100&rows=30"
    ws = await websockets.connect(
        url, additional_headers={"Cookie": f"cc_session={user.token}"}, max_size=None
    )
    term = Term(ws)
    ready: Any = json.loads(await asyncio.wait_for(ws.recv(), COMMAND_TIMEOUT))
    assert ready["type"] == "ready", ready
    term.controls.append(ready)
    return term


def upstream_of(term: Term, cluster: Cluster) -> Replica:
    """The replica nginx sent this WebSocket to (its ``X-Coolcoding-Upstream`` header)."""
    addr = term.ws.response.headers.get("X-Coolcoding-Upstream", "")
    port = int(addr.rsplit(",", 1)[-1].strip().rsplit(":", 1)[-1])
    return next(r for r in cluster.replicas if r.port == port)
