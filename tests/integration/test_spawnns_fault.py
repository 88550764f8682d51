"""The spawn mount namespace's helper (sandbox/local/spawnns.py) SIGKILLed by a fault after it
made the namespace (unshare, host mounts detached) and before it answered: a real
``coolcoding serve`` starts anyway (bwrap then starts from the server's own namespace) and
nothing is left: the helper is reaped, no process or fd holds its namespace, no mount appears
under the data dir. The fault point: ``COOLCODING_SANDBOX_SPAWN_NS_TEST_HOLD`` (tests only)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from coolcoding.settings import Settings
from tests.conftest import searchable
from tests.serve_helpers import free_port

pytestmark = pytest.mark.sandbox
WAIT_S = 60.0


def _until(check: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not reached in time: {what}"
        time.sleep(0.05)


def _holders(ns: str) -> list[str]:
    """Every /proc entry (a process's namespace, or an open fd) that refers to ``ns``."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        links = [proc / "ns" / "mnt", *proc.glob("fd/*")]
        for link in links:
            try:
                if os.readlink(link) == ns:
                    found.append(str(link))
            except OSError:
                continue
    return found


def test_the_hold_is_refused_outside_tests() -> None:
    with pytest.raises(ValueError, match="for tests only"):
        Settings(sandbox_spawn_ns_test_hold="/tmp/x", environment="development")
    assert Settings(sandbox_spawn_ns_test_hold="/tmp/x", environment="test")


@pytest.mark.skipif(os.geteuid() != 0, reason="the spawn namespace is made as root only")
def test_a_helper_killed_after_it_made_the_namespace_leaks_nothing(tmp_path: Path) -> None:
    root = searchable(tmp_path)
    data = root / "data"
    data.mkdir()
    hold = root / "hold"
    port = free_port()
    env = {
        **os.environ,
        "COOLCODING_ENVIRONMENT": "test",
        "COOLCODING_DATA_DIR": str(data),
        "COOLCODING_SANDBOX_POOL_SIZE": "0",
        "COOLCODING_SANDBOX_SESSION_POOL_SIZE": "0",
        "COOLCODING_SANDBOX_CGROUP_PARENT": f"coolcoding-test-spawnns-{secrets.token_hex(3)}",
        "COOLCODING_SANDBOX_SPAWN_NS_TEST_HOLD": str(hold),
    }
    env.pop("COOLCODING_DATABASE_URL", None)
    env.pop("COOLCODING_REDIS_URL", None)
    log = root / "serve.log"
    argv = [str(Path(sys.executable).parent / "coolcoding"), "serve"]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        serve = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _until(lambda: hold.exists() and hold.read_text().strip(), "the helper at its hold")
        helper = int(hold.read_text())
        ns = os.readlink(f"/proc/{helper}/ns/mnt")
        assert ns != os.readlink("/proc/self/ns/mnt")  # its own namespace, made
        theirs = Path(f"/proc/{helper}/mountinfo").read_text().splitlines()
        assert len(theirs) < len(Path("/proc/self/mountinfo").read_text().splitlines())
        assert _holders(ns)  # the helper itself, before the kill
        os.kill(helper, signal.SIGKILL)

        def healthy() -> bool:
            assert serve.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/health/", timeout=2)
            except httpx.HTTPError:
                return False
            return r.status_code == 200

        _until(healthy, "the server up without the namespace")
        assert "no spawn mount namespace" in log.read_text(errors="replace")
        assert not Path(f"/proc/{helper}").exists()  # reaped, not a zombie
        assert _holders(ns) == []  # nobody keeps the half-made namespace
        mounts = Path("/proc/self/mountinfo").read_text()
        assert str(root) not in mounts
    finally:
        serve.terminate()
        try:
            serve.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()
