"""A ``coolcoding serve`` process for the terminal/sync benchmarks (SQLite, its own data dir)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchstats import pct as pct  # re-exported: scripts import it from here

ROOT = Path(__file__).resolve().parents[1]


class Server:
    def __init__(self, root: Path = ROOT, **env: str) -> None:
        """``root``: the checkout whose ``.venv`` runs the server (another build as a peer)."""
        self.tmp = tempfile.mkdtemp(prefix="ccbench-")
        os.chmod(self.tmp, 0o755)  # sandbox uids traverse the data dir
        self.port = 19000 + secrets.randbelow(1000)
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws = self.base.replace("http://", "ws://")
        full_env = {
            **os.environ,
            "COOLCODING_DATA_DIR": self.tmp,
            "COOLCODING_SANDBOX_CGROUP_PARENT": f"coolcoding-bench-{os.getpid()}",
            "COOLCODING_LOGIN_RATE_LIMIT": "100000",
            "COOLCODING_REGISTER_RATE_LIMIT": "100000",
            **{f"COOLCODING_{k.upper()}": v for k, v in env.items()},
        }
        self.proc = subprocess.Popen(
            [str(root / ".venv/bin/coolcoding"), "serve", "--port", str(self.port)],
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(400):
            try:
                if httpx.get(f"{self.base}/api/health/").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        else:
            self.stop()
            raise SystemExit("server did not start")
        self.client = httpx.Client(base_url=self.base, timeout=60)
        name = f"bench{secrets.token_hex(4)}"
        r = self.client.post(
            "/api/users/register",
            json={"username": name, "email": f"{name}@example.com", "password": "benchmark-pass"},
        )
        self.token = r.json()["token"]
        self.headers = {"Cookie": f"cc_session={self.token}"}

    def new_session(self, name: str = "bench") -> str:
        return str(self.client.post("/api/sessions/", json={"name": name}).json()["uuid"])

    def workspace_dir(self, sid: str) -> Path:
        return Path(self.tmp) / "workspaces" / sid

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, stack = [], [pid]
    while stack:
        for c in children.get(stack.pop(), []):
            out.append(c)
            stack.append(c)
    return out


def write_result(name: str, data: dict[str, Any]) -> None:
    out = ROOT / "bench" / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
