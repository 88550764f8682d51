"""Start-up recovery after a crash: ``coolcoding serve`` start-to-healthy on a data dir whose
previous process was SIGKILLed with ``--sessions`` running session sandboxes, all of whose
processes then died too (what a host crash leaves). Each workspace holds ``--files`` files a
program wrote (4.8 KB each) and one more written into it after the kill, which only the
recovery can bring into the database; at start-up each session's sandbox is started again, its
files compared with the database's and stored, and stopped, before the server answers.
``COOLCODING_SANDBOX_RECOVERY_CONCURRENCY`` 1 (one session at a time, as before stop 25) vs
``--concurrency`` (default 4), interleaved round by round, SQLite, pools off. Each round checks
that every session's late file reached the database.

    .venv/bin/python bench/bench_startup_recovery.py [--rounds 5] [--sessions 8] [--files 200]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from benchstats import ratio, summary
from ccserver import ROOT, write_result

COOLCODING = ROOT / ".venv" / "bin" / "coolcoding"
WRITER = """
import os
os.makedirs("out", exist_ok=True)
for i in range({files}):
    with open(f"out/{{i}}.txt", "w") as f:
        f.write(("line %d\\n" % i) * 400)
print("written", flush=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(data: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, float]:
    """``coolcoding serve`` on ``data``: the process, its base URL, exec-to-healthy in ms."""
    port = free_port()
    argv = [str(COOLCODING), "serve", "--host", "127.0.0.1", "--port", str(port)]
    log = (data / "serve.log").open("ab")
    t = time.perf_counter()
    p = subprocess.Popen(argv, env={**env, "COOLCODING_DATA_DIR": str(data)}, stdout=log,
                         stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(f"{base}/api/health/", timeout=2).status_code == 200:
                return p, base, (time.perf_counter() - t) * 1000
        except httpx.HTTPError:
            pass
        if p.poll() is not None:
            raise RuntimeError((data / "serve.log").read_text()[-3000:])
        time.sleep(0.01)


def kill_sandboxes(parent: str) -> None:
    """SIGKILL every process under the cgroup ``parent`` (the sandboxes' agents, shells,
    programs): what a host crash does; their workspaces stay on disk."""
    for _ in range(50):
        pids = [
            int(pid)
            for procs in Path("/sys/fs/cgroup/pids", parent).rglob("cgroup.procs")
            for pid in procs.read_text().split()
        ]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    raise RuntimeError("sandbox processes survived")


def prepare(data: Path, env: dict[str, str], sessions: int, files: int) -> tuple[str, list[str]]:
    """A server with ``sessions`` running sandboxes, each with ``files`` new files its program
    wrote (the sync off meanwhile: the DB has none of them); then the server and every
    sandbox process are SIGKILLed. Returns the user's token and the session ids."""
    p, base, _ = serve(data, env)
    try:
        client = httpx.Client(base_url=base, timeout=120)
        name = f"r{secrets.token_hex(4)}"
        r = client.post("/api/users/register", json={"username": name,
                        "email": f"{name}@example.com", "password": "correct horse b"})  # fmt: skip
        token = str(r.json()["token"])
        sids: list[str] = []
        for i in range(sessions):
            r = client.post("/api/sessions/", json={"name": f"s{i}"})
            sid = str(r.json()["uuid"])
            sids.append(sid)
            r = client.post(f"/api/workspace/{sid}/file/w.py",
                            json={"content": WRITER.format(files=files)})  # fmt: skip
            assert r.status_code in (200, 201), r.text
            r = client.post(f"/api/sessions/{sid}/run", json={"path": "w.py"})
            assert r.status_code == 202, r.text
            eid = r.json()["id"]
            deadline = time.monotonic() + 120
            while (out := client.get(f"/api/executions/{eid}").json())["status"] != "finished":
                assert time.monotonic() < deadline, out
                time.sleep(0.1)
            assert out["stdout"] == "written\n", out
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
        kill_sandboxes(env["COOLCODING_SANDBOX_CGROUP_PARENT"])
    for sid in sids:  # a write the sync never saw (the workspace's image stays mounted)
        late = data / "workspaces" / sid / "late.txt"
        late.write_text(f"late {sid}\n")
        st = (data / "workspaces" / sid).stat()
        os.chown(late, st.st_uid, st.st_gid)
    return token, sids


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="cc-bench-recovery-", dir="/tmp"))
    os.chmod(base, 0o711)
    arms = {"one at a time": 1, f"{args.concurrency} at once": args.concurrency}
    xs: dict[str, list[float]] = {arm: [] for arm in arms}
    parents = []
    try:
        for r in range(args.rounds):
            order = list(arms) if r % 2 == 0 else list(reversed(arms))
            for arm in order:
                parent = f"coolcoding-bench-recovery-{os.getpid()}-{secrets.token_hex(2)}"
                parents.append(parent)
                env = {
                    **os.environ,
                    "COOLCODING_ENVIRONMENT": "test",
                    "COOLCODING_SANDBOX_CGROUP_PARENT": parent,
                    "COOLCODING_SANDBOX_POOL_SIZE": "0",
                    "COOLCODING_SANDBOX_SESSION_POOL_SIZE": "0",
                    "COOLCODING_REGISTER_RATE_LIMIT": "100000",
                    "COOLCODING_MAX_RUNNING_SANDBOXES_PER_USER": "1000",
                    "COOLCODING_SANDBOX_RECOVERY_CONCURRENCY": str(arms[arm]),
                }
                for key in ("COOLCODING_DATABASE_URL", "COOLCODING_REDIS_URL"):
                    env.pop(key, None)
                data = base / f"{r}-{arms[arm]}"
                data.mkdir()
                token, sids = prepare(data, env, args.sessions, args.files)
                p, url, ms = serve(data, env)
                try:
                    client = httpx.Client(base_url=url, timeout=60,
                                          cookies={"cc_session": token})  # fmt: skip
                    for sid in sids:  # recovered: the file written after the kill
                        r_ = client.get(f"/api/workspace/{sid}/file/late.txt")
                        assert r_.status_code == 200, (sid, r_.status_code, r_.text[:200])
                        assert sid in r_.text, r_.text[:200]
                finally:
                    p.terminate()
                    p.wait(timeout=120)
                xs[arm].append(ms)
                print(f"round {r}: {arm}: {ms:.0f} ms", flush=True)
    finally:
        for parent in parents:
            with contextlib.suppress(RuntimeError, OSError):
                kill_sandboxes(parent)
        for line in Path("/proc/self/mounts").read_text().splitlines():
            if line.split()[1].startswith(str(base)):
                subprocess.run(["umount", "-l", line.split()[1]], check=False)
        shutil.rmtree(base, ignore_errors=True)
    one, many = list(arms)
    result = {
        "what": "coolcoding serve start-to-healthy, ms, on a data dir whose server and sandboxes "
        f"were SIGKILLed with {args.sessions} running sessions of {args.files} files each, one of "
        "them written after the kill (recovered into the database at start-up)",
        "rounds": args.rounds,
        "sessions": args.sessions,
        "files": args.files,
        "cpus": os.cpu_count(),
        **{f"{arm}_ms": summary(v, 1) for arm, v in xs.items()},
        "ratio_many_vs_one": ratio(xs[many], xs[one]),
    }
    write_result("startup_recovery", result)
    print(result)


if __name__ == "__main__":
    main()
