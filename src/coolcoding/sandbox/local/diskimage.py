"""Per-workspace ext4 images, loop-mounted at the workspace directory: the kernel enforces the quota.

A measured quota can be overshot between two measurements (ten ``fallocate -l 199M`` in 0.2 s);
a filesystem of the quota's size cannot: a write beyond it fails with ENOSPC in the sandbox.
The image is a sparse file (an empty workspace costs a few hundred KiB of host disk), made once
per session, kept across stops (crash recovery reads the sandbox's files) and deleted with the
session. Its usable space is the quota plus one block per allowed item, so every workspace the DB
accepts (it counts content bytes, the disk allocates whole blocks) fits when materialized; its
inode count is ``max_workspace_items``, so the kernel also bounds the number of files.
No journal: the DB is the truth and ``e2fsck -p`` repairs an image after a host crash. Mounted
through loopmount.py; only this server's mounts (under its workspaces dir) are ever unmounted.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

from coolcoding.sandbox.base import DiskUsage, SandboxError
from coolcoding.sandbox.local import loopmount
from coolcoding.sandbox.local.spawnns import unescape

log = logging.getLogger(__name__)
BLOCK = 4096  # 1 KiB blocks halve the per-file slack but cost ~40 % of write throughput
RESERVED_INODES = 11  # ext4's first inodes (root is 2, lost+found 11)
TOOLS = ("mkfs.ext4", "e2fsck", "dumpe2fs", "resize2fs")
_UNAVAILABLE = "The workspace disk could not be prepared; try again later."
TARGET_XATTR = "user.coolcoding.target"  # the capacity an image was sized for (skips dumpe2fs)


def mkfs_argv(image: Path, blocks: int, inodes: int, uid: int, gid: int) -> list[str]:
    """``mkfs.ext4`` for a workspace image (pure; tested whole)."""
    return [
        "mkfs.ext4", "-q", "-F",
        "-b", str(BLOCK),
        "-m", "0",  # no root reserve: the sandbox user may use all of it
        "-N", str(inodes),
        "-O", "^has_journal",  # the DB is the truth; e2fsck -p repairs after a crash
        "-E", f"root_owner={uid}:{gid},lazy_itable_init=0",
        str(image), str(blocks),
    ]  # fmt: skip


def capacity_bytes(block_count: int, overhead_blocks: int) -> int:
    """What an unprivileged user can store: ext4 keeps min(2 %, 4096) clusters for itself."""
    reserved = min(block_count // 50, 4096)
    return (block_count - overhead_blocks - reserved) * BLOCK


def _run(argv: list[str], what: str) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        raise SandboxError("disk_image", _UNAVAILABLE, f"{what}: {argv[0]}: {e}") from e
    return done


def _superblock(image: Path) -> tuple[int, int]:
    """(block count, overhead blocks) of an image, from ``dumpe2fs -h``."""
    out = _run(["dumpe2fs", "-h", str(image)], "reading the workspace image").stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    count = int(fields["Block count"])
    if "Overhead clusters" in fields:
        return count, int(fields["Overhead clusters"])
    # Older e2fsprogs: count root and lost+found as overhead too (a few blocks larger).
    return count, count - int(fields["Free blocks"])


def is_clean(image: Path) -> bool:
    """The superblock says "cleanly unmounted, no errors": without a journal ext4 clears
    EXT4_VALID_FS while mounted, so a crash leaves it cleared (then e2fsck runs)."""
    with open(image, "rb") as f:
        f.seek(1024 + 56)
        head = f.read(4)
    magic, state = int.from_bytes(head[:2], "little"), int.from_bytes(head[2:], "little")
    return magic == 0xEF53 and state & 0b11 == 1  # VALID_FS set, ERROR_FS clear


def _tag(image: Path, target: int) -> None:
    with contextlib.suppress(OSError):  # no user xattrs here: dumpe2fs at each start instead
        os.setxattr(image, TARGET_XATTR, str(target).encode())


def _tagged(image: Path, target: int) -> bool:
    try:
        return os.getxattr(image, TARGET_XATTR) == str(target).encode()
    except OSError:
        return False


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


class WorkspaceImages:
    """The images of one server (under its data dir) and their mounts (under its workspaces dir)."""

    def __init__(self, images_dir: Path, workspaces_dir: Path, max_items: int) -> None:
        self.images_dir = images_dir
        self.workspaces_dir = workspaces_dir
        self.max_items = max_items
        self._blocks: dict[int, int] = {}  # target capacity -> block count found for it

    def image_path(self, name: str) -> Path:
        return self.images_dir / f"{name}.img"

    def target_bytes(self, quota_bytes: int) -> int:
        return quota_bytes + self.max_items * BLOCK

    def _make(self, image: Path, quota_bytes: int, uid: int, gid: int) -> None:
        """Create the image: mkfs, read its overhead, mkfs again with the size corrected until
        its capacity is the target (2-3 passes, the overhead grows in steps with the number of
        block groups; later images of the same target take one)."""
        target = self.target_bytes(quota_bytes)
        inodes = self.max_items + RESERVED_INODES + 1
        tmp = image.with_suffix(".new")
        known = self._blocks.get(target)
        blocks = known or (target * 102 // 100) // BLOCK + 64
        for _ in range(6):
            tmp.unlink(missing_ok=True)
            tmp.touch(mode=0o600)
            done = _run(mkfs_argv(tmp, blocks, inodes, uid, gid), "making the workspace image")
            if done.returncode != 0:
                tmp.unlink(missing_ok=True)
                raise SandboxError("disk_image", _UNAVAILABLE, f"mkfs.ext4: {done.stderr.strip()}")
            if known is not None:  # mkfs is deterministic for one size and inode count
                break
            capacity = capacity_bytes(*_superblock(tmp))
            if target - 16 * BLOCK <= capacity <= target:
                break
            blocks += (target - capacity) // BLOCK - (1 if capacity > target else 0)
        else:
            tmp.unlink(missing_ok=True)
            raise SandboxError(
                "disk_image", _UNAVAILABLE, f"cannot size an image to {target} bytes"
            )
        self._blocks[target] = blocks
        _tag(tmp, target)
        os.rename(tmp, image)

    def _fit(self, image: Path, mountpoint: Path, target: int) -> None:
        """Follow a changed quota: offline resize2fs, measured by the kernel (statvfs) after
        each pass. A workspace holding more than a lowered quota keeps its size (logged): its
        files are the user's."""
        capacity = self.usage(mountpoint).limit_bytes
        for _ in range(4):
            if target - 16 * BLOCK <= capacity <= target:
                _tag(image, target)
                return
            self.unmount(mountpoint)
            try:
                _run(["e2fsck", "-f", "-p", str(image)], "checking the workspace image")
                count = _superblock(image)[0]
                count += (target - capacity) // BLOCK - (1 if capacity > target else 0)
                argv = ["resize2fs", str(image), str(count)]
                done = _run(argv, "resizing the workspace image")
            finally:
                self._mount(image, mountpoint)
            if done.returncode != 0:
                log.warning("workspace image %s not resized: %s", image, done.stderr.strip())
                return
            capacity = self.usage(mountpoint).limit_bytes
        log.warning("workspace image %s: capacity %d, quota target %d", image, capacity, target)

    def _fsck(self, image: Path) -> None:
        """Repair an image left by a crash (preen); a clean one is not checked."""
        if is_clean(image):
            return
        log.warning("workspace image %s was not unmounted cleanly: e2fsck -p", image)
        done = _run(["e2fsck", "-p", str(image)], "checking the workspace image")
        if done.returncode >= 4:  # 1 = errors corrected, 2 = corrected (reboot: not for us)
            raise SandboxError(
                "disk_image",
                _UNAVAILABLE,
                f"e2fsck {image} found errors it cannot fix (exit {done.returncode}): "
                f"{done.stdout.strip()} {done.stderr.strip()}",
            )

    def mount(self, name: str, mountpoint: Path, quota_bytes: int, uid: int, gid: int) -> None:
        """Mount the session's image at ``mountpoint`` (made first if new); idempotent."""
        if os.path.ismount(mountpoint):
            return
        image = self.image_path(name)
        self.images_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not image.exists():
            self._make(image, quota_bytes, uid, gid)
        else:
            if devices := loopmount.devices_of(image):
                # Mounting it twice (two loop devices, two live file systems) would corrupt it.
                raise SandboxError(
                    "disk_image",
                    _UNAVAILABLE,
                    f"{image} is still attached to {', '.join(devices)} (a mount that has not "
                    "been released yet, e.g. held by a process's mount namespace)",
                )
            self._fsck(image)
        with os.scandir(mountpoint) as it:
            leftovers = any(True for _ in it)
        if leftovers:
            # Files below a mount point would be hidden, their disk lost: a workspace of a
            # server without images, or one left by a failed mount. The DB is the truth.
            log.warning("workspace %s: removing the files below its mount point", name)
            for entry in os.scandir(mountpoint):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
        self._mount(image, mountpoint)
        target = self.target_bytes(quota_bytes)
        if not _tagged(image, target):
            self._fit(image, mountpoint, target)
        lost = mountpoint / "lost+found"
        with contextlib.suppress(FileNotFoundError):
            if os.stat(lost, follow_symlinks=False).st_uid == 0:
                try:  # mkfs's (root-owned, unreadable by the sandbox): not a workspace file
                    os.rmdir(lost)
                except OSError as e:
                    if e.errno != errno.ENOTEMPTY:
                        raise
                    log.warning("workspace %s: e2fsck recovered files into lost+found", name)
                    os.chown(lost, uid, gid)
        os.chmod(mountpoint, 0o700)

    @staticmethod
    def _mount(image: Path, mountpoint: Path) -> None:
        try:
            loopmount.mount_image(image, mountpoint, "ext4", BLOCK)
        except OSError as e:
            raise SandboxError(
                "disk_image",
                _UNAVAILABLE,
                f"mounting the workspace image failed: {e} "
                "(COOLCODING_SANDBOX_DISK_QUOTA=image needs root and loop devices)",
            ) from e

    def unmount(self, mountpoint: Path) -> None:
        """Unmount, lazily if still busy after 2 s; then wait (5 s at most) until the file
        system is released everywhere, so that its image is clean when this returns."""
        if os.path.ismount(mountpoint):
            self._unmount(mountpoint)
        image = self.image_path(mountpoint.name)
        deadline = time.monotonic() + 5.0
        while loopmount.devices_of(image) and time.monotonic() < deadline:
            time.sleep(0.02)

    @staticmethod
    def _unmount(mountpoint: Path) -> None:
        deadline = time.monotonic() + 2.0
        while True:
            try:
                loopmount.unmount(mountpoint)
                return
            except OSError as e:
                if e.errno == errno.EINVAL and not os.path.ismount(mountpoint):
                    return  # unmounted meanwhile (a concurrent stop or clean-up)
                if e.errno != errno.EBUSY:
                    raise
            if time.monotonic() > deadline:
                log.warning("workspace %s still busy after 2 s: detached lazily", mountpoint)
                loopmount.unmount(mountpoint, lazy=True)
                return
            time.sleep(0.05)  # e.g. a sandbox's mount namespace still being torn down

    def delete(self, name: str, mountpoint: Path) -> None:
        """Unmount and delete the session's image and mount point (session deleted)."""
        self.unmount(mountpoint)
        self.image_path(name).unlink(missing_ok=True)
        shutil.rmtree(mountpoint, ignore_errors=True)

    def mounted(self) -> list[Path]:
        """This server's workspace mounts (under its workspaces dir), from mountinfo."""
        prefix = str(self.workspaces_dir) + "/"
        found = []
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                point = unescape(line.split(" ")[4])
                if point.startswith(prefix) and "/" not in point[len(prefix) :]:
                    found.append(Path(point))
        return found

    def images(self) -> list[str]:
        """Names of this server's images."""
        if not self.images_dir.is_dir():
            return []
        return [p.stem for p in self.images_dir.glob("*.img")]

    @staticmethod
    def usage(mountpoint: Path) -> DiskUsage:
        st = os.statvfs(mountpoint)
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        return DiskUsage(used, used + st.f_bavail * st.f_frsize)
