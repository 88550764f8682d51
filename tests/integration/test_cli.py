"""The ``coolcoding`` command line, run as a real process."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import _free_port, make_database

CLI = [sys.executable, "-c", "from coolcoding.cli import main; main()"]


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)


def test_db_upgrade_and_user_create_list(backend: str, tmp_path: Path) -> None:
    db = make_database(backend, tmp_path)
    env = {**os.environ, "COOLCODING_DATA_DIR": str(tmp_path), "COOLCODING_DATABASE_URL": db.url}
    try:
        r = _run(["db", "upgrade"], env)
        assert r.returncode == 0 and "up to date" in r.stdout, r.stderr
        r = _run(["user", "create", "carol", "carol@example.com", "--password", "s3cret-pass"], env)
        assert r.returncode == 0 and "carol" in r.stdout, r.stderr
        r = _run(["user", "create", "carol", "c2@example.com", "--password", "s3cret-pass"], env)
        assert r.returncode != 0 and "already registered" in (r.stdout + r.stderr)
        r = _run(["user", "list"], env)
        assert r.returncode == 0 and "carol@example.com" in r.stdout
    finally:
        db.drop()


def test_serve_starts_on_an_empty_data_dir_and_prints_the_url(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "COOLCODING_DATA_DIR": str(tmp_path / "fresh"),
        "COOLCODING_SANDBOX_CGROUP_PARENT": f"cc-cli-{port}",
    }
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/health/")
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert r.json()["database"]["dialect"] == "sqlite"
        assert (tmp_path / "fresh" / "coolcoding.db").exists()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/" in out
