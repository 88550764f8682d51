"""Workspace images (sandbox/local/diskimage.py) on the real kernel: crash repair, resize,
and start-up cleanup that touches only this server's mounts."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from coolcoding.sandbox.local.diskimage import (
    BLOCK,
    WorkspaceImages,
    capacity_bytes,
    is_clean,
    mkfs_argv,
)
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.sandbox.local.sandbox import LocalSandbox
from coolcoding.sandbox.local.spawnns import unescape
from tests.integration.conftest_sandbox import make_runtime, new_spec, requires_sandbox

MiB = 1024 * 1024


def test_mkfs_argv_is_the_whole_command() -> None:
    assert mkfs_argv(Path("/d/x.img"), 5000, 75, 1001, 1002) == [
        "mkfs.ext4", "-q", "-F", "-b", "4096", "-m", "0", "-N", "75", "-O", "^has_journal",
        "-E", "root_owner=1001:1002,lazy_itable_init=0", "/d/x.img", "5000",
    ]  # fmt: skip


def test_capacity_leaves_out_overhead_and_the_kernels_reserve() -> None:
    assert capacity_bytes(5000, 100) == (5000 - 100 - 100) * BLOCK  # 2 %
    assert capacity_bytes(1_000_000, 1000) == (1_000_000 - 1000 - 4096) * BLOCK  # at most 4096


def test_mountinfo_paths_are_unescaped() -> None:
    assert unescape("/a\\040b\\134c") == "/a b\\c"


async def start(rt: LocalRuntime, name: str, disk: int = 8 * MiB) -> LocalSandbox:
    sb = await rt.start(new_spec(session_uuid=name, disk_bytes=disk))
    assert isinstance(sb, LocalSandbox)
    return sb


@requires_sandbox
async def test_an_image_left_by_a_crash_is_repaired_and_mounts(tmp_path: Path) -> None:
    async with make_runtime(max_workspace_items=32) as rt:
        assert rt.images is not None
        sb = await start(rt, "crashy")
        (sb.workspace / "kept.txt").write_text("kept\n")
        image = rt.images.image_path("crashy")
        # A copy taken while mounted is what a host crash leaves: "not cleanly unmounted".
        subprocess.run(["sync", "-f", str(sb.workspace)], check=True)
        shutil.copyfile(image, tmp_path / "crashed.img")
        await rt.stop("crashy")
        assert is_clean(image) and not is_clean(tmp_path / "crashed.img")
        shutil.copyfile(tmp_path / "crashed.img", image)
        sb = await start(rt, "crashy")
        assert (sb.workspace / "kept.txt").read_text() == "kept\n"
        await rt.stop("crashy")
        assert is_clean(image)


@requires_sandbox
async def test_a_changed_quota_resizes_the_image_and_keeps_the_files() -> None:
    async with make_runtime(max_workspace_items=32) as rt:
        sb = await start(rt, "grow", disk=8 * MiB)
        (sb.workspace / "a").write_bytes(b"a" * MiB)
        small = (await sb.disk_usage()).limit_bytes
        await rt.stop("grow")
        sb = await start(rt, "grow", disk=24 * MiB)
        usage = await sb.disk_usage()
        assert small < 9 * MiB and 24 * MiB <= usage.limit_bytes <= 24 * MiB + 33 * BLOCK
        assert (sb.workspace / "a").read_bytes() == b"a" * MiB
        await rt.stop("grow")
        sb = await start(rt, "grow", disk=8 * MiB)  # lowered again: the files fit, it shrinks
        assert abs((await sb.disk_usage()).limit_bytes - small) <= 16 * BLOCK
        assert (sb.workspace / "a").read_bytes() == b"a" * MiB


@requires_sandbox
async def test_cleanup_unmounts_only_this_servers_stale_mounts() -> None:
    async with make_runtime() as mine, make_runtime() as other:
        assert mine.images is not None and other.images is not None
        theirs = await start(other, "theirs")
        await start(mine, "stale")
        # A previous process of this server left "stale" mounted: forget it, then clean up.
        del mine._sandboxes["stale"]
        await start(mine, "live")
        await mine.cleanup_orphans()
        mounts = [str(p) for p in [*mine.images.mounted(), *other.images.mounted()]]
        assert str(theirs.workspace) in mounts  # another server's: untouched
        assert str(mine.settings.workspaces_dir / "live") in mounts  # running: untouched
        assert str(mine.settings.workspaces_dir / "stale") not in mounts
        assert os.path.ismount(theirs.workspace)


def test_images_are_named_by_session() -> None:
    images = WorkspaceImages(Path("/d/images"), Path("/d/ws"), 10)
    assert images.image_path("abc") == Path("/d/images/abc.img")
    assert images.target_bytes(MiB) == MiB + 10 * BLOCK


pytestmark = pytest.mark.sandbox
