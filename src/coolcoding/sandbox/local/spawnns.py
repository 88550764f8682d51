"""The mount namespace judge sandboxes' bwrap starts from: the host's, without the mounts bwrap
never reads (``sandbox_spawn_mount_ns``, issue 10).

Why: bwrap copies its caller's whole mount table into its new namespace, re-reads all of
``/proc/self/mountinfo`` after every bind (11 times per judge job), then detaches and frees the
copies: each host mount costs every bwrap start ~26-34 us of CPU (bench/bench_bwrap_cost.py),
and a host with the disk quota has one mount per running session (its workspace image), plus
/sys and its cgroup hierarchies. This namespace keeps only the mounts on the way to what a judge
sandbox's bwrap binds by path or by fd (``/usr``, the data dir, the generated /etc's root, the
bwrap binary) and the /proc and /dev subtrees (bwrap's ``--proc`` needs a fully visible procfs
in its namespace; ``--dev`` binds the host's null, zero, full, random, urandom, tty).

Security: the sandbox's view does not change: bwrap builds it from scratch with the same argv,
and what bwrap's set-up can reach during the start is a subset of the host's. The namespace is a
private copy: a mount made on the host later never appears in it, and a session image unmounted
on the host is not kept busy by it (its copies were detached here). A session's own sandbox
(agent, terminals: a workspace image, extra binds) still starts from the host's namespace.
Entered in the spawned child while it is still root (setns needs CAP_SYS_ADMIN), after it joined
its cgroups (under /sys, which is gone here) and before it drops its privileges.
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
from collections.abc import Iterable, Sequence

log = logging.getLogger(__name__)

# bwrap's --proc and --dev read from these (procfs must be fully visible for a new proc mount
# in a user namespace): kept with everything under them.
KEPT_SUBTREES = ("/proc", "/dev")


def unescape(field: str) -> str:
    """A mountinfo path field (the kernel escapes space, tab, newline and backslash in octal)."""
    out, i = [], 0
    while i < len(field):
        code = field[i + 1 : i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points(mountinfo: str) -> list[str]:
    """The mount points of a /proc/<pid>/mountinfo text, in its order."""
    return [unescape(line.split()[4]) for line in mountinfo.splitlines() if line.strip()]


def _under(path: str, top: str) -> bool:
    return top == "/" or path == top or path.startswith(top.rstrip("/") + "/")


def mounts_to_detach(points: Sequence[str], needed: Iterable[str]) -> list[str]:
    """The mount points not needed, deepest first (the order to detach them in).

    Kept: "/", every mount on the way to a ``needed`` path (the one holding it and its
    ancestors), and everything at or under ``KEPT_SUBTREES``. A mount point listed twice (a
    mount over a mount) is listed twice: each detach removes the top one."""
    kept = {"/"}
    for path in needed:
        kept.update(p for p in points if _under(path, p))
    kept.update(p for p in points if any(_under(p, top) for top in KEPT_SUBTREES))
    drop = [p for p in points if p not in kept]
    return sorted(drop, key=lambda p: (-p.count("/"), p))


# Run in a child (the server's own mount namespace stays as it is): a private copy of the
# namespace, the mounts not needed detached, "ready", then it waits for its stdin to close.
# The parent holds the namespace by an fd of /proc/<child>/ns/mnt.
_CHILD = r"""
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
def check(ret, what):
    if ret != 0:
        e = ctypes.get_errno()
        raise OSError(e, what + ": " + os.strerror(e))
check(libc.unshare(0x00020000), "unshare(CLONE_NEWNS)")
check(libc.mount(b"none", b"/", None, (1 << 14) | (1 << 18), None), "mount --make-rprivate /")
for point in json.loads(sys.argv[1]):
    if libc.umount2(point.encode(), 2) != 0 and ctypes.get_errno() not in (2, 22):
        raise OSError(ctypes.get_errno(), "umount2 " + point)
if sys.argv[2]:  # sandbox_spawn_ns_test_hold: made, not answered; a fault test kills it here
    with open(sys.argv[2], "w") as f:
        f.write(str(os.getpid()))
    import signal
    while True:
        signal.pause()
print("ready", flush=True)
sys.stdin.read()
"""


def create_spawn_namespace(needed: Sequence[str], timeout_s: float = 10.0, hold: str = "") -> int:
    """An fd of a new mount namespace (see the module docstring) keeping ``needed``'s mounts;
    raises OSError when it cannot be made (the caller then starts bwrap from its own).
    ``hold``: ``sandbox_spawn_ns_test_hold`` (tests only)."""
    with open("/proc/self/mountinfo") as f:
        detach = mounts_to_detach(mount_points(f.read()), needed)
    child = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _CHILD, json.dumps(detach), hold],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    try:
        # A child stuck in umount2 (e.g. a hung network mount) must not hang the server's start.
        ready, _, _ = select.select([child.stdout], [], [], timeout_s)
        if not ready:
            child.kill()
            raise OSError(f"spawn mount namespace: no answer within {timeout_s} s")
        if child.stdout.readline().strip() != b"ready":
            child.wait(timeout_s)
            raise OSError(f"spawn mount namespace: {child.stderr.read().decode()[-500:]}")
        fd = os.open(f"/proc/{child.pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        child.stdin.close()
        child.wait(timeout_s)
        child.stdout.close()
        child.stderr.close()
    log.info("spawn mount namespace: %d host mounts left out", len(detach))
    return fd


class SpawnNamespace:
    """The namespace's fd while the runtime lives; ``fd`` is None once closed (or never made)."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    @classmethod
    def create(cls, needed: Sequence[str], hold: str = "") -> SpawnNamespace:
        """Made when possible: otherwise (not root, no unshare) bwrap starts from the server's
        own namespace, as without the setting (a cost, never a change of the sandbox's view)."""
        if os.geteuid() != 0:
            return cls(None)
        try:
            return cls(create_spawn_namespace(needed, hold=hold))
        except (OSError, subprocess.SubprocessError):
            log.warning("no spawn mount namespace: bwrap starts from the server's", exc_info=True)
            return cls(None)

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)
