"""A real ``coolcoding serve`` SIGKILLed while it builds the C zygote (czygote.py), twice, then
started again: the half-written binary is never used, the next start builds it again and its
pooled sandboxes run judge jobs with the C zygote, and no build leftover stays in the cache.

The compiler is a fake ``cc`` first on the server's PATH (czygote.py finds ``cc`` through
PATH): for the zygote's build it writes part of an executable as its output, says so, and then
blocks, so the server is killed with the half binary on disk; anything else goes to the real
``cc``. The build runs on the first pooled sandbox's start, which follows the first judge job.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from coolcoding.sandbox.local import czygote
from tests.conftest import make_database, searchable
from tests.serve_helpers import ServeProcess, serve_log

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler (cc)"),
]
TIMEOUT = 60.0
PARTIAL_BYTES = 3000  # of /bin/true: an ELF header and then nothing that runs
MEMFD_EXE = "/memfd:coolcoding-zygote"


def fake_cc(bindir: Path, marks: Path) -> None:
    """``cc`` that, asked to build the zygote (its output in the zygote cache), writes a
    truncated executable there, records its pid in ``marks`` and blocks; else the real cc."""
    real = shutil.which("cc")
    bindir.mkdir()
    marks.mkdir()
    script = bindir / "cc"
    script.write_text(f"""#!/bin/sh
out=; prev=
for a; do [ "$prev" = -o ] && out=$a; prev=$a; done
case "$out" in
*/{czygote.CACHE_DIR}/*/{czygote.BINARY}) ;;
*) exec {real} "$@" ;;
esac
head -c {PARTIAL_BYTES} /bin/true > "$out"
echo "$out" > {marks}/.$$ && mv {marks}/.$$ {marks}/$$
exec sleep 600
""")
    script.chmod(0o755)


def wait_for(what: str, ok: Callable[[], object], data: Path, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, f"{what}: {serve_log(data)[-3000:]}"
        time.sleep(0.05)


def waiting_zygotes(parent: str) -> dict[int, str]:
    """The pooled sandboxes' zygotes under cgroup ``parent`` (in an ``eph-*`` sandbox, neither
    bwrap nor its pid 1): pid -> what it executes (``/proc/PID/exe``)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cgroup = Path(f"/proc/{entry}/cgroup").read_text()
            exe = os.readlink(f"/proc/{entry}/exe")
        except OSError:
            continue
        if re.search(f"/{parent}/[^/]+/eph-", cgroup) and not exe.endswith("/bwrap"):
            found[int(entry)] = exe
    return found


class Api:
    def __init__(self, token: str) -> None:
        self.token = token
        self.client: httpx.Client | None = None

    def on(self, srv: ServeProcess) -> httpx.Client:
        if self.client is not None:
            self.client.close()
        self.client = httpx.Client(base_url=srv.base_url, timeout=30,
                                   headers={"Authorization": f"Bearer {self.token}"})  # fmt: skip
        return self.client


def judge(client: httpx.Client, source: str) -> str:
    """Submit a Python job; its id (not waited for)."""
    r = client.post("/api/executions", json={"language": "python", "source": source})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def finished(client: httpx.Client, job_id: str, data: Path) -> dict[str, object]:
    def done() -> bool:
        return bool(client.get(f"/api/executions/{job_id}").json()["status"] == "finished")

    wait_for(f"job {job_id}", done, data)
    body: dict[str, object] = client.get(f"/api/executions/{job_id}").json()
    return body


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "data").mkdir()
    d = searchable(tmp_path / "data")
    db = make_database("sqlite", d)
    yield d
    db.drop()


def test_a_server_killed_mid_zygote_build_never_uses_the_half_binary(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = f"coolcoding-test-zkill-{secrets.token_hex(4)}"
    env = {
        "database_url": f"sqlite+aiosqlite:///{data / 'test.db'}",
        "sandbox_cgroup_parent": parent,
        "sandbox_keep_on_shutdown": "false",
        "sandbox_pool_size": "1",
        "sandbox_session_pool_size": "0",
        "sandbox_zygote": "auto",
    }
    cache = data / "sandbox-state" / czygote.CACHE_DIR
    key = czygote.cache_key(czygote.SOURCE.read_bytes())
    marks = tmp_path / "marks"
    fake_cc(tmp_path / "bin", marks)
    real_path = os.environ["PATH"]
    compilers: list[int] = []  # the fake cc processes (blocked; they outlive their server)
    api = Api("")
    srv: ServeProcess | None = None
    try:
        # Twice: a server whose first pooled start builds the zygote, killed mid-build.
        monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{real_path}")
        builds: list[Path] = []
        for _ in range(2):
            srv = ServeProcess(data, **env)
            if not api.token:
                name = f"z{secrets.token_hex(5)}"
                r = httpx.post(f"{srv.base_url}/api/users/register", json={
                    "username": name, "email": f"{name}@example.com",
                    "password": "correct horse b"}, timeout=30)  # fmt: skip
                assert r.status_code == 201, r.text
                api.token = r.json()["token"]
            client = api.on(srv)
            # The pool is empty: the job runs without a zygote, then the pool's refill builds.
            assert finished(client, judge(client, "print(1)"), data)["verdict"] == "accepted"
            wait_for("the build", lambda: len(os.listdir(marks)) > len(compilers), data)
            [pid] = {int(p) for p in os.listdir(marks)} - set(compilers)
            compilers.append(pid)
            out = Path((marks / str(pid)).read_text().strip())
            assert out.parent.name.startswith(f"{czygote.BUILD_PREFIX}{srv.proc.pid}-")
            assert out.parent.parent == cache and out.stat().st_size == PARTIAL_BYTES
            builds.append(out.parent)
            srv.kill()  # mid-build: the half binary stays
            # Only this build's dir: the second server removed the first's (its pid is gone).
            assert [d for d in os.listdir(cache) if d != key] == [out.parent.name]
            assert not (cache / key).exists()
        assert not builds[0].exists() and builds[1].exists()

        # The real compiler again: the next start never takes the half binary, builds anew.
        monkeypatch.setenv("PATH", real_path)
        srv = ServeProcess(data, **env)
        client = api.on(srv)
        assert finished(client, judge(client, "print(2)"), data)["verdict"] == "accepted"
        # Pooled sandboxes (the refilled one, and a reused one if any) wait in C zygotes.
        wait_for("a pooled zygote", lambda: waiting_zygotes(parent), data)
        zygotes = waiting_zygotes(parent)
        assert all(exe.startswith(MEMFD_EXE) for exe in zygotes.values()), zygotes
        assert sorted(os.listdir(cache)) == [key]  # no build leftover, no half binary
        binary = (cache / key / czygote.BINARY).read_bytes()
        assert (cache / key / czygote.DIGEST).read_text().strip() == (
            hashlib.sha256(binary).hexdigest()
        )
        assert binary[:PARTIAL_BYTES] != Path("/bin/true").read_bytes()[:PARTIAL_BYTES]
        # The next job's program is what one of those zygotes executed (same host process).
        job = judge(client, "import time\ntime.sleep(1)\nprint(3)")

        def exec_ed() -> bool:
            for pid in zygotes:
                try:
                    if "python" in os.readlink(f"/proc/{pid}/exe"):
                        return True
                except OSError:
                    continue
            return False

        wait_for("a C zygote ran the job", exec_ed, data)
        done = finished(client, job, data)
        assert done["verdict"] == "accepted" and done["stdout"] == "3\n", done
        log = serve_log(data)
        assert "the C zygote is unavailable" not in log and "C zygote failed" not in log
        assert "Traceback" not in log
    finally:
        for pid in compilers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if srv is not None:
            if srv.proc.poll() is not None:  # killed: its start removes the leftovers
                monkeypatch.setenv("PATH", real_path)
                srv = ServeProcess(data, **env)
            srv.terminate()
        if api.client is not None:
            api.client.close()
