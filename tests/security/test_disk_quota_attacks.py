"""Attack: fill the disk beyond the workspace quota (issue 12, finding 2).

Ten ``fallocate -l 199M`` wrote 1,990 MiB in a 200 MiB workspace: the quota was only measured at
intervals. Now the workspace is a filesystem image of the quota's size (sandbox/local/diskimage.py):
every write beyond it fails with ENOSPC inside the sandbox, whatever the program or its speed.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from coolcoding.sandbox.base import ExecLimits
from coolcoding.sandbox.local.files import disk_usage_bytes
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.sandbox.local.sandbox import LocalSandbox
from tests.conftest import LiveServer, register_user, start_live_server
from tests.integration.conftest_sandbox import make_runtime, new_spec, requires_sandbox
from tests.sandbox_helpers import Term, file_items

pytestmark = [requires_sandbox, pytest.mark.sandbox]

MiB = 1024 * 1024
QUOTA = 20 * MiB
ITEMS = 64
# The kernel's limit: the quota plus one 4 KiB block per allowed item (whole-block allocation of
# files the DB counts by bytes), plus the root folder's block.
BOUND = QUOTA + ITEMS * 4096 + 4096
FILL = "for i in 1 2 3 4 5 6 7 8 9 10; do fallocate -l 19M f$i; done"
ENOSPC = b"No space left on device"


@pytest.fixture
async def small_runtime() -> AsyncIterator[LocalRuntime]:
    async with make_runtime(max_workspace_items=ITEMS, max_workspace_bytes=QUOTA) as rt:
        yield rt


async def _sandbox(rt: LocalRuntime) -> LocalSandbox:
    sb = await rt.start(new_spec(memory_mb=256, pids=64, disk_bytes=QUOTA))
    assert isinstance(sb, LocalSandbox)
    return sb


def on_disk(sb: LocalSandbox) -> int:
    """Bytes allocated in the workspace, walked from the host (not the sandbox's own report)."""
    return disk_usage_bytes(str(sb.workspace))


async def test_ten_fallocates_beyond_the_quota_fail_with_enospc(
    small_runtime: LocalRuntime,
) -> None:
    sb = await _sandbox(small_runtime)
    r = await sb.exec(["sh", "-c", FILL], limits=ExecLimits(wall_s=20))
    assert r.stderr.count(ENOSPC) >= 9, r.stderr
    assert on_disk(sb) <= BOUND
    assert r.limit_hit == "disk"  # the workspace is full: reported like before
    usage = await sb.disk_usage()
    assert QUOTA <= usage.limit_bytes <= BOUND and usage.used_bytes <= usage.limit_bytes


async def test_writing_zeroes_stops_at_enospc_below_the_file_size_limit(
    small_runtime: LocalRuntime,
) -> None:
    sb = await _sandbox(small_runtime)
    # Each file stays under RLIMIT_FSIZE (= the quota): only the filesystem can stop them.
    script = (
        "head -c 12M /dev/zero > a; cat /dev/zero > b; echo cat=$?; "
        "dd if=/dev/zero of=c bs=1M count=15 2>&1; echo dd=$?"
    )
    r = await sb.exec(["sh", "-c", script], limits=ExecLimits(wall_s=20))
    out = r.stdout + r.stderr
    assert out.count(ENOSPC) >= 2 and b"cat=1" in out and b"dd=1" in out, out
    assert on_disk(sb) <= BOUND
    # Freeing space makes it usable again.
    r = await sb.exec(["sh", "-c", "rm a b c && head -c 8M /dev/zero > d && echo ok"])
    assert r.stdout == b"ok\n", r.stderr


async def test_terminal_filler_gets_enospc_and_its_shell_lives(small_runtime: LocalRuntime) -> None:
    sb = await _sandbox(small_runtime)
    term = await sb.open_terminal(100, 30)
    await term.write(f"{FILL}; echo filled-$((40+2))\n".encode())
    out = b""
    while b"filled-42" not in out:
        out += await asyncio.wait_for(term.read(), 20)
    assert out.count(ENOSPC) >= 9
    assert on_disk(sb) <= BOUND
    await term.write(b"rm f*; echo alive-$((6*7))\n")
    while b"alive-42" not in out:
        out += await asyncio.wait_for(term.read(), 20)
    assert term.poll() is None
    await term.close()


@pytest.fixture
def quota_server(backend: str, tmp_path: Path) -> Iterator[LiveServer]:
    """A live server with a small quota (a sync fixture: the PostgreSQL set-up runs its own loop)."""
    server, stop = start_live_server(
        backend, tmp_path, max_workspace_bytes=QUOTA, max_workspace_items=ITEMS
    )
    yield server
    stop()


async def test_api_reports_usage_and_the_server_keeps_serving(quota_server: LiveServer) -> None:
    server = quota_server
    u = register_user(server)
    sid = u.new_session()
    t = await Term.open(server, u, sid)
    _, out = await t.run(FILL)
    assert out.count(ENOSPC) >= 9
    status = u.client.get(f"/api/workspace/{sid}/status").json()
    assert QUOTA <= status["disk_limit_bytes"] <= BOUND
    assert 19 * MiB <= status["disk_used_bytes"] <= status["disk_limit_bytes"]
    root = server.platform.runtime.workspace_dir(sid)
    assert disk_usage_bytes(root) <= BOUND
    assert u.client.get("/api/health/").status_code == 200
    t2 = await Term.open(server, u, sid, tid="t2")  # a full workspace is no reason to refuse
    _, out = await t2.run("rm f*; echo back-$((6*7))")
    assert b"back-42" in out
    await t.close()
    await t2.close()
    assert u.client.post(f"/api/sessions/{sid}/sandbox/stop").status_code == 200
    status = u.client.get(f"/api/workspace/{sid}/status").json()
    assert status["disk_used_bytes"] is None and status["disk_limit_bytes"] is None


async def test_a_full_db_workspace_materializes_into_its_image_after_stop_and_start(
    tmp_path: Path,
) -> None:
    server, stop = start_live_server(
        "sqlite", tmp_path, max_workspace_bytes=QUOTA, max_workspace_items=ITEMS
    )
    try:
        u = register_user(server)
        sid = u.new_session()
        blob = os.urandom(4 * MiB + 900 * 1024)
        names = [f"big{i}.bin" for i in range(4)]  # 19.5 MiB of the 20 MiB quota
        for name in names:
            r = u.client.post(
                f"/api/workspace/{sid}/file/{name}",
                json={"content": base64.b64encode(blob).decode(), "encoding": "base64"},
            )
            assert r.status_code == 201, r.text
        runtime = server.platform.runtime
        root = Path(runtime.workspace_dir(sid))
        for _round in range(2):
            assert u.client.post(f"/api/sessions/{sid}/sandbox/start").status_code == 200
            assert os.path.ismount(root)
            assert sorted(os.listdir(root)) == names  # no lost+found either
            assert all((root / n).read_bytes() == blob for n in names)
            assert u.client.post(f"/api/sessions/{sid}/sandbox/stop").status_code == 200
            assert not os.path.ismount(root)
        assert sorted(file_items(u, sid)) == names
        image = runtime.images.image_path(sid)
        assert image.exists()
        assert u.client.delete(f"/api/sessions/{sid}").status_code == 204
        assert not image.exists() and not root.exists()
    finally:
        stop()
