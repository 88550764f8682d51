"""cgroup v1 and v2: limits (memory, pids, cpu) and accounting (cpu time, peak memory, OOM kills).

Layout: ``<parent>/<server id>/<session uuid>/<leaf>`` (the server id: ``identity.py``; a
server lists and removes groups under its own id only, the parent may be shared) where the
session group carries the sandbox's limits and each leaf holds one terminal (``term-N``) or one
exec (``exec-N``, with its own limits, so its peak memory and CPU time are measured alone). Leaves keep v2's "no processes in inner groups"
rule, and the same layout is used on v1. Fail closed: a missing controller raises, never
a sandbox without limits.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from coolcoding.sandbox.base import SandboxError

V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct")
V2_CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class CgroupLimits:
    memory_bytes: int | None = None
    pids: int | None = None
    cpus: float | None = None


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read(path: Path | str) -> str:
    # os.open/os.read rather than Path.read_text: no text-io wrapper per cgroup file (these are
    # read several times per judge job on the event loop, issue 10).
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return ""
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode()
    except OSError:
        return ""
    finally:
        os.close(fd)


def _kv(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fs type, super options) of every cgroup mount, from /proc/self/mountinfo."""
    out = []
    for line in _read(Path("/proc/self/mountinfo")).splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(rfields) >= 3 and rfields[0] in ("cgroup", "cgroup2"):
            out.append((fields[4], rfields[0], set(rfields[2].split(","))))
    return out


class Cgroup:
    """One cgroup (a directory per v1 controller mount, or one v2 directory)."""

    def __init__(self, version: Literal[1, 2], dirs: dict[str, Path]) -> None:
        self.version = version
        self.dirs = dirs  # controller -> directory (v2: every controller -> the same dir)
        # Accounting baselines (``reset_accounting``): what a pooled zygote used before release.
        self._cpu_base_ns = 0
        self._oom_base = 0
        self._pids_events_base = 0
        self._peak_fd = -1  # v2: a memory.peak fd that was reset (the reset is per open file)
        # v1: whether memory.memsw.* exist (swap accounting; the same for every group of the
        # hierarchy, so the manager asks once); None: look.
        self.memsw: bool | None = None
        # Limit files this object wrote and what (``set_limits`` skips a write of the same
        # value: a reused judge sandbox's session group gets its owner's same limits per job).
        # Forgotten when the directory is made anew or removed.
        self._written: dict[Path, str] = {}
        self.controllers_enabled = False  # v2: ``+memory +pids +cpu`` written (inner groups)

    @property
    def paths(self) -> list[str]:
        return sorted({str(d) for d in self.dirs.values()})

    @property
    def procs_files(self) -> list[str]:
        """The files a process writes "0" into to join this group (see process.py)."""
        return [str(Path(p) / "cgroup.procs") for p in self.paths]

    def _f(self, controller: str, name: str) -> Path:
        return self.dirs[controller] / name

    def forget_limits(self) -> None:
        """The directory is new (or gone): nothing this object wrote is in it."""
        self._written.clear()
        self.controllers_enabled = False

    def _write_limit(self, path: Path, value: str) -> None:
        if self._written.get(path) == value:
            return
        self._written.pop(path, None)  # unknown until the write succeeds
        _write(path, value)
        self._written[path] = value

    def set_limits(self, limits: CgroupLimits) -> None:
        """Write ``limits`` (skipping files this object already set to the same value)."""
        try:
            if limits.memory_bytes is not None:
                if self.version == 1:
                    mem = self._f("memory", "memory.limit_in_bytes")
                    memsw = self._f("memory", "memory.memsw.limit_in_bytes")
                    # With swap accounting (no escaping the limit into swap) the kernel wants
                    # memory <= memsw at every step: raising an existing limit (a pooled
                    # sandbox's) writes memsw first.
                    has_memsw = memsw.exists() if self.memsw is None else self.memsw
                    order = [mem, memsw] if has_memsw else [mem]
                    value = str(limits.memory_bytes)
                    if len(order) == 2 and any(self._written.get(f) != value for f in order):
                        current = self._written.get(memsw) or _read(memsw)
                        if limits.memory_bytes > int(current or 0):
                            order.reverse()
                    for path in order:
                        self._write_limit(path, value)
                else:
                    self._write_limit(self._f("memory", "memory.max"), str(limits.memory_bytes))
                    self._write_limit(self._f("memory", "memory.swap.max"), "0")
            if limits.pids is not None:
                self._write_limit(self._f("pids", "pids.max"), str(limits.pids))
            if limits.cpus is not None:
                quota = max(1000, int(limits.cpus * CPU_PERIOD_US))
                if self.version == 1:
                    self._write_limit(self._f("cpu", "cpu.cfs_period_us"), str(CPU_PERIOD_US))
                    self._write_limit(self._f("cpu", "cpu.cfs_quota_us"), str(quota))
                else:
                    self._write_limit(self._f("cpu", "cpu.max"), f"{quota} {CPU_PERIOD_US}")
        except FileNotFoundError as e:
            if e.filename and "swap" in str(e.filename):
                return  # v2 without swap accounting: no swap to escape into
            raise SandboxError(
                "cgroup_limit", "The sandbox could not be limited.", f"cgroup file missing: {e}"
            ) from e

    def reset_accounting(self) -> None:
        """Measure from now on: CPU time, peak memory, OOM kills and pids.max events.

        v1 resets CPU time and the peak in the kernel (write 0). v2 cannot reset cpu.stat, so
        its usage is subtracted; memory.peak is reset per open file (kernel >= 6.12: write to it,
        keep that fd, read it later). On an older v2 kernel the peak stays the group's (the
        zygote's few MiB included), documented in pool.py. Calling it again replaces the kept
        fd (never two open per group); ``memory_peak_bytes``, ``close`` and ``remove`` close it.
        """
        self.close()
        if self.version == 1:
            _write(self._f("cpuacct", "cpuacct.usage"), "0")
            _write(self._f("memory", "memory.max_usage_in_bytes"), "0")
        else:
            self._cpu_base_ns = self._raw_cpu_ns()
        self._peak_fd = self._reset_peak()
        self._oom_base = self._raw_oom_kills()
        self._pids_events_base = self._raw_pids_events()

    def _reset_peak(self) -> int:
        """v2: an fd of memory.peak whose peak was reset (-1: v1, or a kernel without it)."""
        if self.version == 1:
            return -1
        try:
            fd = os.open(self._f("memory", "memory.peak"), os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            return -1
        try:
            os.write(fd, b"reset")
        except OSError:
            os.close(fd)
            return -1
        return fd

    def close(self) -> None:
        """Close the memory.peak fd ``reset_accounting`` kept, if any (idempotent). The server
        holds one per measured exec: a group dropped without this leaks an fd per job."""
        fd, self._peak_fd = self._peak_fd, -1
        if fd >= 0:
            os.close(fd)

    def _raw_cpu_ns(self) -> int:
        if self.version == 1:
            txt = _read(self._f("cpuacct", "cpuacct.usage")).strip()
            return int(txt) if txt.isdigit() else 0
        return _kv(_read(self._f("cpu", "cpu.stat"))).get("usage_usec", 0) * 1000

    def cpu_ns(self) -> int:
        return self._raw_cpu_ns() - self._cpu_base_ns

    def memory_peak_bytes(self) -> int | None:
        """The peak since ``reset_accounting`` (or since creation); closes the kept fd."""
        if self._peak_fd >= 0:
            try:
                txt = os.pread(self._peak_fd, 64, 0).decode().strip()
            except OSError:
                txt = ""
            finally:
                self.close()
        else:
            name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
            txt = _read(self._f("memory", name)).strip()
        return int(txt) if txt.isdigit() else None

    def _raw_oom_kills(self) -> int:
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        kv = _kv(_read(self._f("memory", name)))
        return kv.get("oom_kill", 0) + (kv.get("oom_group_kill", 0) if self.version == 2 else 0)

    def oom_kills(self) -> int:
        return self._raw_oom_kills() - self._oom_base

    def _raw_pids_events(self) -> int:
        return _kv(_read(self._f("pids", "pids.events"))).get("max", 0)

    def pids_limit_events(self) -> int:
        """How often a fork failed because of ``pids.max``."""
        return self._raw_pids_events() - self._pids_events_base

    def pids(self) -> list[int]:
        found: set[int] = set()
        for d in self.paths:
            for line in _read(Path(d) / "cgroup.procs").split():
                found.add(int(line))
        return sorted(found)

    def kill_all(self, spare: int | None = None, *, wait: bool = True) -> None:
        """SIGKILL every process in the group (and its children); loops because a fork bomb may
        fork between reading cgroup.procs and the kill (bounded by pids.max).

        ``spare``: the host-side bwrap, left alive so that it reaps its child (the sandbox's
        pid 1) and exits by itself; killed first, that child would be re-parented to the host's
        init and could linger as a zombie.

        ``wait=False``: return once every process left has been sent SIGKILL, without polling
        (and sleeping on the event loop) until they have finished exiting; ``remove`` waits for
        that. Sound against forks: a process with a fatal signal pending cannot complete a
        ``fork`` (``copy_process`` checks it), so a listing of only killed pids is final.
        cgroup v2's ``cgroup.kill`` is atomic against concurrent forks by itself.
        """
        if spare is None and self.version == 2 and (self.dirs["pids"] / "cgroup.kill").exists():
            try:
                _write(self.dirs["pids"] / "cgroup.kill", "1")
            except OSError:
                pass
            else:
                if not wait:
                    return
        killed: set[int] = set()
        for _ in range(100):
            pids = [p for p in self._all_pids() if p != spare]
            if not pids or (not wait and killed.issuperset(pids)):
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed.update(pids)
            if wait:
                time.sleep(0.0005)

    def all_pids(self) -> list[int]:
        """Every process in the group and its subgroups."""
        return self._all_pids()

    def _all_pids(self) -> list[int]:
        # Every process is in exactly one group of each hierarchy and sandboxes cannot move
        # themselves (no cgroupfs inside), so one hierarchy (pids) lists them all.
        found: set[int] = set()
        todo = [str(self.dirs["pids"])]
        while todo:  # os.walk without its per-directory Path and list building
            d = todo.pop()
            for line in _read(d + "/cgroup.procs").split():
                found.add(int(line))
            with contextlib.suppress(OSError), os.scandir(d) as it:
                todo.extend(e.path for e in it if e.is_dir(follow_symlinks=False))
        return sorted(found)

    def remove(self, timeout_s: float = 2.0) -> bool:
        """Kill what is left and remove the directories (children first). True when gone."""
        self.close()
        self.forget_limits()
        deadline = time.monotonic() + timeout_s
        while True:
            self.kill_all()
            if self._rmdir_all():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)

    def try_remove(self) -> bool:
        """``remove`` without waiting (nothing sleeps: fit for the event loop): SIGKILL what is
        left, one pass of rmdir; False when a directory is still busy (a process exiting)."""
        self.close()
        self.forget_limits()
        self.kill_all(wait=False)
        return self._rmdir_all()

    def _rmdir_all(self) -> bool:
        """One rmdir pass over the group's directories, children first; False if one is busy.
        A leaf (an exec's group: the common case) is one rmdir per directory, no listing."""
        busy = False
        for d in self.paths:
            try:
                os.rmdir(d)
                continue
            except FileNotFoundError:
                continue
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
            if rmdir_tree(d):  # subgroups (or processes) in it
                busy = True
        return not busy


def rmdir_tree(top: str, *, keep_top: bool = False) -> list[str]:
    """rmdir ``top``'s subdirectories and then ``top`` (not with ``keep_top``), each after its
    children; returns the ones still busy (EBUSY: a process in it, or a busy child), in that
    order. One already gone is fine; any other error raises."""
    busy = []
    for d in tree_deepest_first(top):
        if keep_top and d == top:
            continue
        try:
            os.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            busy.append(d)
    return busy


def tree_deepest_first(top: str) -> list[str]:
    """``top`` and the directories under it, each after its children: one scandir per
    directory and no stat per entry (a cgroup directory holds tens of files, few groups)."""
    out: list[str] = []
    todo = [top]
    while todo:
        d = todo.pop()
        out.append(d)  # before its children: reversed below
        with contextlib.suppress(OSError), os.scandir(d) as it:
            todo.extend(e.path for e in it if e.is_dir(follow_symlinks=False))
    out.reverse()
    return out


def _cannot_create(d: Path, e: OSError) -> SandboxError:
    return SandboxError(
        "cgroup_permission",
        "Sandboxes are not available on this server.",
        f"cannot create {d}: {e} (run the server as root or delegate that cgroup to its user)",
    )


class CgroupManager:
    """Finds the cgroup hierarchy once and creates groups under
    ``<hierarchy>/<parent>/<instance>`` (``instance``: this server's id; the bases)."""

    def __init__(
        self,
        parent: str = "coolcoding",
        version: Literal["auto", "v1", "v2"] = "auto",
        v2_root: Path | None = None,
        *,
        instance: str = "",
    ) -> None:
        if not parent or parent.startswith("/") or ".." in parent.split("/"):
            raise SandboxError("cgroup_config", "Bad sandbox cgroup configuration.", parent)
        if "/" in instance or instance in (".", ".."):
            raise SandboxError("cgroup_config", "Bad sandbox cgroup configuration.", instance)
        self.parent = parent
        self.instance = instance
        mounts = _mounts()
        v1 = {c: Path(mp) for mp, fs, opts in mounts if fs == "cgroup" for c in opts}
        v2 = [Path(mp) for mp, fs, _ in mounts if fs == "cgroup2"]
        v2_base = v2_root or (v2[0] if v2 else None)
        v2_ok = v2_base is not None and set(V2_CONTROLLERS) <= set(
            _read(v2_base / "cgroup.controllers").split()
        )
        if version == "v1" or (version == "auto" and all(c in v1 for c in V1_CONTROLLERS)):
            missing = [c for c in V1_CONTROLLERS if c not in v1]
            if missing:
                raise SandboxError(
                    "cgroup_missing",
                    "Sandboxes are not available on this server.",
                    f"cgroup v1 controllers not mounted: {', '.join(missing)} (mount them under "
                    "/sys/fs/cgroup/<controller>, or use a cgroup v2 host)",
                )
            self.version: Literal[1, 2] = 1
            self.tops = {c: v1[c] / parent for c in V1_CONTROLLERS}
        elif v2_ok and v2_base is not None:
            self.version = 2
            self.tops = {c: v2_base / parent for c in V2_CONTROLLERS}
        else:
            raise SandboxError(
                "cgroup_missing",
                "Sandboxes are not available on this server.",
                "no usable cgroup hierarchy: need cgroup v1 with memory, pids, cpu, cpuacct "
                f"mounted, or a cgroup v2 tree ({v2_base}) whose cgroup.controllers lists "
                "memory, pids and cpu (delegate it, e.g. systemd Delegate=yes, and set "
                "COOLCODING_SANDBOX_CGROUP_V2_ROOT)",
            )
        # The parent may be shared with other servers; this server's groups live in its own
        # child of it (or in the parent itself when no instance is given).
        self.bases = {c: (t / instance if instance else t) for c, t in self.tops.items()}
        self._memsw: bool | None = None

    def _enable_v2_controllers(self, directory: Path) -> None:
        want = " ".join("+" + c for c in V2_CONTROLLERS)
        try:
            _write(directory / "cgroup.subtree_control", want)
        except OSError as e:
            raise SandboxError(
                "cgroup_delegation",
                "Sandboxes are not available on this server.",
                f"cannot enable {want} in {directory}/cgroup.subtree_control: {e} (the cgroup "
                "must be delegated to the server and hold no processes itself)",
            ) from e

    def ensure_parent(self) -> None:
        """Create the (shared) parent and check that we may; this server's own group in it is
        made by the first sandbox (``create``), so an app that never runs one (a schema
        export) leaves nothing named after it."""
        for top in set(self.tops.values()):
            self._make_top(top)

    def _make_top(self, top: Path) -> None:
        self._mkdir(top)
        if self.version == 2:
            self._enable_v2_controllers(top.parent)
            self._enable_v2_controllers(top)

    def _mkdir(self, d: Path) -> None:
        try:
            d.mkdir(exist_ok=True)
        except OSError as e:
            raise _cannot_create(d, e) from e

    def _ensure_base(self) -> None:
        for top, base in {(self.tops[c], self.bases[c]) for c in self.tops}:
            for _attempt in range(3):
                if base.is_dir():
                    break
                # Another server's shutdown removes the shared parent when it is empty.
                if not top.is_dir():
                    self._make_top(top)
                try:
                    base.mkdir()
                except FileExistsError:
                    break
                except FileNotFoundError:
                    continue  # the parent went again in between: once more
                except OSError as e:
                    raise _cannot_create(base, e) from e
                if self.version == 2 and base != top:
                    self._enable_v2_controllers(base)
                break

    def group(self, rel: str) -> Cgroup:
        return Cgroup(self.version, {c: b / rel for c, b in self.bases.items()})

    def create(
        self, rel: str, limits: CgroupLimits, *, inner: bool = False, known: Cgroup | None = None
    ) -> Cgroup:
        """Create (or reuse) ``<parent>/<rel>`` with ``limits``; ``inner``: will have children.
        ``known``: this group's object from an earlier ``create`` (a reused judge sandbox's
        session group): limits it already wrote are not written again while its directories
        stay (one made anew here starts from nothing)."""
        cg = known if known is not None else self.group(rel)
        for d in cg.paths:
            try:
                try:  # the parent usually exists: one mkdir, no stat of the bases per group
                    os.mkdir(d)
                    cg.forget_limits()
                except FileExistsError:
                    pass
                except FileNotFoundError:
                    self._ensure_base()
                    os.makedirs(d, exist_ok=True)
                    cg.forget_limits()
            except OSError as e:
                raise SandboxError(
                    "cgroup_permission", "The sandbox could not be created.", f"mkdir {d}: {e}"
                ) from e
        if self.version == 2 and inner and not cg.controllers_enabled:
            self._enable_v2_controllers(Path(cg.paths[0]))
            cg.controllers_enabled = True
        if self.version == 1:
            if self._memsw is None:
                self._memsw = (cg.dirs["memory"] / "memory.memsw.limit_in_bytes").exists()
            cg.memsw = self._memsw
        cg.set_limits(limits)
        return cg

    def remove_parent(self) -> None:
        """Remove this server's (now empty) groups, then the shared parent if no other server
        uses it; a non-empty one is left in place."""
        for c in self.tops:
            for d in dict.fromkeys([self.bases[c], self.tops[c]]):
                with contextlib.suppress(OSError):
                    d.rmdir()

    def leftovers(self) -> list[str]:
        """Names of groups under this server's base (sessions of this or a previous process of
        the same server; never another server's)."""
        names: set[str] = set()
        for b in self.bases.values():
            with contextlib.suppress(FileNotFoundError):
                names.update(e.name for e in os.scandir(b) if e.is_dir(follow_symlinks=False))
        return sorted(names)
