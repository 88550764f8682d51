"""Start-up checks of the host: bubblewrap, user namespaces, cgroups, the system layout.

``check_environment`` is called once when the app starts, so a host that cannot sandbox fails
with an actionable message at start-up instead of on the first terminal.
"""

from __future__ import annotations

import glob
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from coolcoding.sandbox.base import SandboxError
from coolcoding.sandbox.local import diskimage
from coolcoding.sandbox.local.bwrap import HostLayout
from coolcoding.sandbox.local.cgroups import CgroupManager
from coolcoding.sandbox.local.identity import server_id
from coolcoding.settings import Settings

# Top-level system directories a program may need. On a merged-/usr host (Debian 12) most are
# symlinks into /usr and are recreated as symlinks; real directories are bound read-only.
SYSTEM_TOP_LEVEL = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Host-specific /etc entries (glob patterns) copied into the sandbox's /etc when present.
ETC_EXTRA_GLOBS = ("/etc/java-*-openjdk",)


@dataclass(frozen=True)
class HostEnvironment:
    bwrap_path: str
    bwrap_version: str
    layout: HostLayout
    cgroups: CgroupManager


def detect_host_layout() -> HostLayout:
    ro_dirs = ["/usr"]
    symlinks: list[tuple[str, str]] = []
    for path in SYSTEM_TOP_LEVEL:
        if os.path.islink(path):
            symlinks.append((path, os.readlink(path)))
        elif os.path.isdir(path):
            ro_dirs.append(path)
    etc_extra = tuple(sorted(p for g in ETC_EXTRA_GLOBS for p in glob.glob(g)))
    return HostLayout(ro_dirs=tuple(ro_dirs), symlinks=tuple(symlinks), etc_extra=etc_extra)


def ensure_traversable(directory: Path) -> None:
    """Create ``directory`` (mode 0711) and check that the sandbox uid may pass through every
    ancestor: bwrap resolves its mount sources as that uid. 0711: pass through, not list."""
    directory.mkdir(mode=0o711, parents=True, exist_ok=True)
    os.chmod(directory, 0o711)  # noqa: S103 (search only: no listing of other sessions)
    for d in [directory, *directory.parents]:
        if os.geteuid() == 0 and not os.stat(d).st_mode & 0o001:
            raise SandboxError(
                "data_dir_permissions",
                "Sandboxes are not available on this server.",
                f"{d} is not searchable by other users, so sandbox uids cannot reach the "
                f"workspaces below it: chmod o+x {d} (or choose another COOLCODING_DATA_DIR)",
            )


def check_disk_images() -> None:
    """The kernel-enforced quota mounts an ext4 image per workspace: root, loop devices and
    e2fsprogs are needed. Fail closed: a quota that cannot be enforced is not silently dropped."""
    problem = None
    if os.geteuid() != 0:
        problem = "mounting a workspace image needs root"
    elif not os.path.exists("/dev/loop-control"):
        problem = "no loop devices (/dev/loop-control missing: modprobe loop)"
    elif missing := diskimage.missing_tools():
        problem = f"{', '.join(missing)} not found (Debian/Ubuntu: apt-get install e2fsprogs)"
    if problem is not None:
        raise SandboxError(
            "disk_quota_unavailable",
            "Sandboxes are not available on this server.",
            f"COOLCODING_SANDBOX_DISK_QUOTA=image: {problem}; or set "
            "COOLCODING_SANDBOX_DISK_QUOTA=measured (measured at intervals, can be overshot)",
        )


def check_environment(settings: Settings) -> HostEnvironment:
    """Verify the host can run local sandboxes; raise ``SandboxError`` saying what to fix."""
    bwrap = settings.sandbox_bwrap_path
    if not (os.path.isfile(bwrap) and os.access(bwrap, os.X_OK)):
        raise SandboxError(
            "bwrap_missing",
            "Sandboxes are not available on this server.",
            f"bubblewrap not found at {bwrap}: install it (Debian/Ubuntu: apt-get install "
            "bubblewrap) or set COOLCODING_SANDBOX_BWRAP_PATH",
        )
    if os.stat(bwrap).st_mode & 0o4000:
        # A setuid bwrap refuses some options and changes the privilege model; we want the
        # plain binary running in an unprivileged user namespace.
        raise SandboxError(
            "bwrap_setuid", "Sandboxes are not available on this server.", f"{bwrap} is setuid"
        )
    try:
        out = subprocess.run([bwrap, "--version"], capture_output=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError) as e:
        raise SandboxError(
            "bwrap_broken", "Sandboxes are not available on this server.", f"{bwrap}: {e}"
        ) from e
    version = out.stdout.decode().strip().removeprefix("bubblewrap ")
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts < (0, 8):
        raise SandboxError(
            "bwrap_old",
            "Sandboxes are not available on this server.",
            f"bubblewrap {version} is too old: need >= 0.8 (--disable-userns, --bind-fd, --size)",
        )
    try:
        max_userns = int(open("/proc/sys/user/max_user_namespaces").read())  # noqa: SIM115
    except (OSError, ValueError):
        max_userns = 1
    if max_userns < 2:
        raise SandboxError(
            "userns_disabled",
            "Sandboxes are not available on this server.",
            "user namespaces are disabled (sysctl user.max_user_namespaces=0): enable them",
        )
    if settings.sandbox_disk_quota == "image":
        check_disk_images()
    cgroups = CgroupManager(
        settings.sandbox_cgroup_parent,
        settings.sandbox_cgroup_version,
        settings.sandbox_cgroup_v2_root,
        instance=server_id(settings.data_dir.resolve()),
    )
    cgroups.ensure_parent()
    ensure_traversable(settings.workspaces_dir)
    ensure_traversable((settings.data_dir / "sandbox-state").resolve())
    return HostEnvironment(bwrap, version, detect_host_layout(), cgroups)
