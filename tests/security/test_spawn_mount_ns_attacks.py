"""The judge's spawn mount namespace (sandbox/local/spawnns.py): judge sandboxes' bwrap starts
from a private copy of the host's mount namespace without the mounts it never reads.

Pinned here: bwrap really starts from it (fails without the wiring in sandbox.py/spawner); a
session's workspace image mounted on the host is not in it, so it neither costs each judge job
nor stays busy there after the host unmounts it (fails without ``mounts_to_detach``); a bad
namespace fd fails the spawn instead of starting bwrap from the host's namespace (fails without
the helper's check); and the sandbox's view is the same with and without it (a regression guard:
mounts, their options, /dev, what is writable).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from coolcoding.sandbox.base import ExecLimits, SandboxError
from coolcoding.sandbox.local.cgroups import CgroupLimits
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.sandbox.local.sandbox import LocalSandbox
from coolcoding.sandbox.local.spawner import SPAWNER, SpawnSetup
from tests.security.test_judge_reuse_attacks import dispose, local_runtime, new_data_dir

pytestmark = pytest.mark.sandbox

LIMITS = ExecLimits(cpu_s=10, wall_s=30, memory_mb=256, pids=64)
# What a job sees of its sandbox: mount points with their options and fs types (not the host
# source paths, which differ between two runtimes), /dev, owners and modes, what it can write.
VIEW = r"""
id -u
awk '{print $5, $6, $(NF-2)}' /proc/self/mountinfo
ls -ln /dev | awk '{print $1, $3, $4, $NF}'
stat -c '%n %a %u' / /etc /tmp /home /home/coder /workspace /app /dev /dev/shm /proc
for d in / /etc /usr /tmp /home/coder /workspace /dev /dev/shm /proc/sys; do
  if : 2>/dev/null > "$d/.w"; then echo "$d writable"; rm -f "$d/.w"; else echo "$d read-only"; fi
done
ls /sys /run /root 2>&1 | sed 's/^ls: //'
"""


def host_mounts_in(ns_fd: int) -> list[str]:
    """The mount points of the namespace ``ns_fd`` (read through nsenter, as root)."""
    out = subprocess.run(
        ["nsenter", f"--mount=/proc/self/fd/{ns_fd}", "cat", "/proc/self/mountinfo"],
        pass_fds=[ns_fd], capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [line.split()[4] for line in out.splitlines()]


@pytest.fixture(scope="module")
def image_and_runtime() -> Iterator[tuple[Path, LocalRuntime]]:
    """A runtime started while a "session image" (a tmpfs) is mounted in its workspaces dir."""
    data_dir = new_data_dir("cc-spawnns-")
    image = data_dir / "workspaces" / "11111111-2222-3333-4444-555555555555"
    image.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "ccimage", str(image)], check=True)
    rt = local_runtime(data_dir, sandbox_cgroup_parent=f"cc-test-spawnns-{os.getpid()}",
                       sandbox_pool_size=1)  # fmt: skip
    try:
        yield image, rt
    finally:
        subprocess.run(["umount", str(image)], check=True)  # not kept busy by the namespace
        asyncio.run(dispose(rt, data_dir))


def test_a_session_image_mounted_on_the_host_is_not_in_the_spawn_namespace(
    image_and_runtime: tuple[Path, LocalRuntime],
) -> None:
    image, rt = image_and_runtime
    assert rt.spawn_ns.fd is not None
    inside = host_mounts_in(rt.spawn_ns.fd)
    assert str(image) not in inside
    assert not [p for p in inside if p == "/sys" or p.startswith("/sys/")]
    assert "/proc" in inside and "/dev" in inside
    # the host's own namespace still has all of it
    host = Path("/proc/self/mountinfo").read_text()
    assert f" {image} " in host


def test_a_host_mount_made_after_start_up_never_appears_in_it(
    image_and_runtime: tuple[Path, LocalRuntime], tmp_path: Path
) -> None:
    _image, rt = image_and_runtime
    assert rt.spawn_ns.fd is not None
    later = tmp_path / "later"
    later.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "cclater", str(later)], check=True)
    try:
        assert str(later) not in host_mounts_in(rt.spawn_ns.fd)
    finally:
        subprocess.run(["umount", str(later)], check=True)


def test_judge_bwrap_starts_from_the_spawn_namespace(
    image_and_runtime: tuple[Path, LocalRuntime],
) -> None:
    _image, rt = image_and_runtime
    assert rt.spawn_ns.fd is not None
    want = os.fstat(rt.spawn_ns.fd).st_ino

    async def main() -> int:
        async with rt.ephemeral({}, memory_mb=256, pids=64) as box:
            assert isinstance(box, LocalSandbox)
            leaf = box.new_leaf("exec", CgroupLimits())
            proc = await box.spawn(["/usr/bin/sleep", "5"], cgroup=leaf, stdin=0,
                                   stdout=1, stderr=2, cwd=None, env=None)  # fmt: skip
            try:
                return os.stat(f"/proc/{proc.pid}/ns/mnt").st_ino  # the outer bwrap's
            finally:
                proc.kill()
                await proc.wait()

    assert asyncio.run(main()) == want
    assert os.stat("/proc/self/ns/mnt").st_ino != want


def test_a_bad_mount_namespace_fd_fails_the_spawn(tmp_path: Path) -> None:
    r, w = os.pipe()
    setup = SpawnSetup(procs_files=[], rlimits=[], uid=os.getuid(), gid=os.getgid(),
                       drop=False, mntns_fd=r)  # fmt: skip

    async def main() -> None:
        await SPAWNER.spawn(["/usr/bin/true"], env={}, setup=setup, stdin=0, stdout=1,
                            stderr=2, pass_fds=[], new_session=True)  # fmt: skip

    try:
        with pytest.raises(SandboxError) as e:
            asyncio.run(main())
        assert "setns mnt" in str(e.value.log_message)
    finally:
        os.close(r)
        os.close(w)


def test_the_sandbox_view_is_the_same_with_and_without_it(
    image_and_runtime: tuple[Path, LocalRuntime],
) -> None:
    _image, on = image_and_runtime
    data_dir = new_data_dir("cc-spawnns-off-")
    off = local_runtime(data_dir, sandbox_cgroup_parent=f"cc-test-spawnns-off-{os.getpid()}",
                        sandbox_pool_size=1, sandbox_spawn_mount_ns=False)  # fmt: skip
    assert off.spawn_ns.fd is None

    async def view(rt: LocalRuntime) -> str:
        async with rt.ephemeral({}, memory_mb=256, pids=64) as box:
            res = await box.exec(["/bin/bash", "-c", VIEW], limits=LIMITS)
            assert res.exit_code == 0, res.stderr
            out = res.stdout.decode()
            uid = out.split("\n", 1)[0]
            return out.replace(uid, "UID")  # each sandbox has its own uid

    async def main() -> tuple[str, str]:
        try:
            return await view(on), await view(off)
        finally:
            await dispose(off, data_dir)

    seen_on, seen_off = asyncio.run(main())
    assert seen_on == seen_off
    assert "/workspace writable" in seen_on and "/usr read-only" in seen_on
    assert "/dev/shm writable" in seen_on and "/ read-only" in seen_on
