"""Run the real ``coolcoding serve`` as a subprocess (its own uvicorn, protocol and fd limit)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(data_dir: Path, **env: str | int | float) -> Iterator[str]:
    """``coolcoding serve`` on a free port of 0.0.0.0 (so 127.0.0.2 reaches it too), SQLite in
    ``data_dir``, no sandbox pool; ``env`` adds COOLCODING_* settings. Yields the port."""
    port = free_port()
    full = {
        **os.environ,
        "COOLCODING_ENVIRONMENT": "test",
        "COOLCODING_DATA_DIR": str(data_dir),
        "COOLCODING_SANDBOX_POOL_SIZE": "0",
        "COOLCODING_SANDBOX_KEEP_ON_SHUTDOWN": "false",
        "COOLCODING_REGISTER_RATE_LIMIT": "100000",
        "COOLCODING_SANDBOX_CGROUP_PARENT": f"coolcoding-test-{os.getpid()}-{secrets.token_hex(3)}",
        **{f"COOLCODING_{k.upper()}": str(v) for k, v in env.items()},
    }
    log = (data_dir / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "coolcoding"),
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
        ],
        env=full,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "coolcoding serve did not start: " + (data_dir / "serve.log").read_text()
                )
            time.sleep(0.1)
        yield str(port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def run_file(client: httpx.Client, sid: str, name: str, content: str) -> dict[str, Any]:
    """Write ``name`` into session ``sid`` and run it (the session's sandbox, started if need
    be); the finished execution."""
    r = client.post(f"/api/workspace/{sid}/file/{name}", json={"content": content})
    assert r.status_code in (200, 201), r.text
    r = client.post(f"/api/sessions/{sid}/run", json={"path": name})
    assert r.status_code == 202, r.text
    eid = r.json()["id"]
    deadline = time.monotonic() + 60
    while (out := client.get(f"/api/executions/{eid}").json())["status"] != "finished":
        assert time.monotonic() < deadline, out
        time.sleep(0.2)
    return dict(out)


def serve_log(data_dir: Path) -> str:
    return (data_dir / "serve.log").read_text(errors="replace")


class ServeProcess:
    """A ``coolcoding serve`` subprocess a test can SIGKILL or SIGTERM and start again on the
    same data dir (``env``: COOLCODING_* settings, as in ``serve``)."""

    def __init__(self, data_dir: Path, **env: str | int | float) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.env = {
            **os.environ,
            "COOLCODING_ENVIRONMENT": "test",
            "COOLCODING_DATA_DIR": str(data_dir),
            "COOLCODING_SANDBOX_POOL_SIZE": "0",
            "COOLCODING_REGISTER_RATE_LIMIT": "100000",
            **{f"COOLCODING_{k.upper()}": str(v) for k, v in env.items()},
        }
        log = (data_dir / "serve.log").open("ab")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "coolcoding"), "serve",
             "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.base_url}/api/health/", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("coolcoding serve did not start: " + serve_log(data_dir))
            time.sleep(0.1)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def terminate(self) -> None:
        """SIGTERM: a graceful shutdown."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
