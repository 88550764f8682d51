"""Mount a filesystem image through a loop device, with the kernel's own calls (no ``mount -o loop``).

``LOOP_CONFIGURE`` sets the device up in one step with ``LO_FLAGS_AUTOCLEAR`` (the device detaches
itself when the filesystem is unmounted, or when a failed mount drops our fd: nothing leaks) and
``LO_FLAGS_DIRECT_IO`` (the image's blocks are not cached a second time in the host's page cache:
measured 20 % faster than util-linux's buffered loop for ``dd conv=fsync``). Linux >= 5.8.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import stat
import struct
from pathlib import Path

LOOP_CONTROL = "/dev/loop-control"
LOOP_CTL_GET_FREE = 0x4C82
LOOP_CONFIGURE = 0x4C0A
LO_FLAGS_AUTOCLEAR = 4
LO_FLAGS_DIRECT_IO = 16
LOOP_MAJOR = 7
MS_NOSUID, MS_NODEV, MS_NOATIME = 2, 4, 1024
MNT_DETACH = 2
# struct loop_config {u32 fd; u32 block_size; struct loop_info64 info; u64 reserved[8]}
# struct loop_info64 {u64 device, inode, rdevice, offset, sizelimit; u32 number, encrypt_type,
#                     encrypt_key_size, flags; u8 file_name[64], crypt_name[64], key[32]; u64 init[2]}
_LOOP_CONFIG = struct.Struct("=II5Q4I64s64s32s2Q8Q")
_libc = ctypes.CDLL(None, use_errno=True)


class LoopMountError(OSError):
    """Mounting failed; the message names the host limit or resource at fault."""


def loop_config(image_fd: int, block_size: int, flags: int, name: bytes) -> bytes:
    """The ``LOOP_CONFIGURE`` argument (pure; tested)."""
    return _LOOP_CONFIG.pack(
        image_fd, block_size, 0, 0, 0, 0, 0, 0, 0, 0, flags, name[:63], b"", b"", 0, 0, *[0] * 8
    )


def _free_loop_device() -> tuple[int, str]:
    try:
        ctl = os.open(LOOP_CONTROL, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError as e:
        msg = f"no loop devices ({LOOP_CONTROL} missing: modprobe loop)"
        raise LoopMountError(e.errno, msg) from e
    try:
        number = fcntl.ioctl(ctl, LOOP_CTL_GET_FREE)
    except OSError as e:
        raise LoopMountError(
            e.errno, f"no free loop device ({LOOP_CONTROL}: {os.strerror(e.errno or 0)}; "
            "the loop module's max_loop or the devices in use)",
        ) from e  # fmt: skip
    finally:
        os.close(ctl)
    path = f"/dev/loop{number}"
    if not os.path.exists(path):  # a /dev without udev (a container): make the node
        with contextlib.suppress(FileExistsError):
            os.mknod(path, stat.S_IFBLK | 0o660, os.makedev(LOOP_MAJOR, number))
    return number, path


def _configure(dev: int, image_fd: int, block_size: int, name: bytes) -> int:
    """LOOP_CONFIGURE, with direct I/O when the image's filesystem allows it; 0 or an errno."""
    for flags in (LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO, LO_FLAGS_AUTOCLEAR):
        try:
            fcntl.ioctl(dev, LOOP_CONFIGURE, loop_config(image_fd, block_size, flags, name))
            return 0
        except OSError as e:
            if e.errno != errno.EINVAL or not flags & LO_FLAGS_DIRECT_IO:
                return e.errno or errno.EIO
    return errno.EINVAL


def _attach(image: Path, block_size: int) -> tuple[int, str]:
    """A free loop device configured on ``image``: its open fd (closing it detaches the device
    unless a mount holds it) and its path."""
    img = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    try:
        for _ in range(8):  # another process may take the free device first: EBUSY, next one
            _number, path = _free_loop_device()
            dev = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            err = _configure(dev, img, block_size, str(image).encode())
            if err == 0:
                return dev, path
            os.close(dev)
            if err != errno.EBUSY:
                raise LoopMountError(err, f"{path}: LOOP_CONFIGURE: {os.strerror(err)}")
        raise LoopMountError(errno.EBUSY, "no free loop device (all taken while we tried)")
    finally:
        os.close(img)


def mount_image(image: Path, target: Path, fstype: str, block_size: int) -> None:
    """Mount ``image`` at ``target`` (nosuid, nodev, noatime) through an autoclear loop device."""
    dev, path = _attach(image, block_size)
    try:
        flags = MS_NOSUID | MS_NODEV | MS_NOATIME
        if _libc.mount(path.encode(), os.fsencode(target), fstype.encode(), flags, None) != 0:
            err = ctypes.get_errno()
            raise LoopMountError(err, f"mount {image} at {target}: {os.strerror(err)}")
    finally:
        os.close(dev)  # the mount holds the device now; on failure this detaches it


def devices_of(image: Path) -> list[str]:
    """Loop devices still attached to ``image``: its filesystem is alive until they detach
    (e.g. a copy of the mount in a mount namespace another process is creating)."""
    found = []
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        with contextlib.suppress(OSError):
            if backing.read_text().rstrip("\n") == str(image):
                found.append(backing.parent.parent.name)
    return found


def unmount(target: Path, *, lazy: bool = False) -> None:
    if _libc.umount2(os.fsencode(target), MNT_DETACH if lazy else 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")
