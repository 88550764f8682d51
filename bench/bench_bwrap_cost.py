"""Where a judge job's bwrap start costs CPU (issue 10): the exact argv the warm pool starts
(``bwrap.build_bwrap_argv`` with this host's layout, a workspace, a generated /etc, the seccomp
program and a json-status pipe), running ``/usr/bin/true``, against variants that drop or change
one element at a time, the same argv started from the judge's spawn mount namespace
(spawnns.py, this build), and from a copy of the host's namespace with N more mounts (what N
running sessions' workspace images add).

Per run: the CPU of the whole bwrap tree, from a cpuacct cgroup of its own (every process of the
run, including bwrap's inner ones that its outer process never reaps, which ``wait4`` rusage
misses; what ``perf stat -e task-clock`` counts), and the wall time. Per block of runs: the CPU
the kernel's own threads (kworkers: network namespace clean-up, RCU, mount release) used
meanwhile, divided by the runs (machine-wide: other load on the machine shows up there too).
Interleaved: every round runs one block of every variant, in a shuffled order; figures are
medians and p99 over all runs, and ratios against ``full`` measured in the same rounds. The
"floor" rows price the harness itself (fork, cgroup join, exec of true) and bwrap's namespaces.

Usage (root, cgroup v1 cpuacct): .venv/bin/python bench/bench_bwrap_cost.py [--rounds 10]
[--block 20] [--only "full,no --dev"] [--host-mounts 100] [--out bench/results/bwrap_cost.json]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from benchstats import pct, summary
from coolcoding.sandbox.local import bwrap, seccomp
from coolcoding.sandbox.local.environment import detect_host_layout
from coolcoding.sandbox.local.etcdir import write_etc_dir

try:  # this build's spawn mount namespace (absent in older builds)
    from coolcoding.sandbox.local import spawnns
except ImportError:
    spawnns = None  # type: ignore[assignment]
SPAWN_NS = "full from the spawn mount ns"
RESULTS = Path(__file__).parent / "results" / "bwrap_cost.json"
UID = 200_000 + 4242
BWRAP = "/usr/bin/bwrap"
# The fd numbers in the argv (opened fresh for every run: bwrap reads the seccomp program and
# closes the mount fds).
WS_FD, APP_FD, ETC_FD, SECCOMP_FD, STATUS_FD = 20, 21, 22, 23, 24
Argv = list[str]
LIBC = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS = 0x00020000
CMD = ["/usr/bin/true"]


def full_config() -> bwrap.BwrapConfig:
    return bwrap.BwrapConfig(
        layout=detect_host_layout(),
        uid=UID,
        gid=UID,
        workspace_fd=WS_FD,
        app_alias_fd=APP_FD,
        etc_fd=ETC_FD,
        json_status_fd=STATUS_FD,
        seccomp_fd=SECCOMP_FD,
    )


def drop(a: Argv, opt: str, nargs: int, value: str | None = None) -> Argv:
    """``a`` without the option ``opt`` (and its ``nargs`` arguments; the one whose first
    argument is ``value`` when given)."""
    out: Argv = []
    i = 0
    end = a.index("--")
    while i < len(a):
        if i < end and a[i] == opt and (value is None or a[i + 1] == value):
            i += 1 + nargs
            continue
        out.append(a[i])
        i += 1
    return out


def insert_before(a: Argv, opt: str, extra: Argv) -> Argv:
    i = a.index(opt)
    return a[:i] + extra + a[i:]


def variants(full: Argv, new: Argv | None) -> dict[str, Argv]:
    v: dict[str, Argv] = {"full": full}
    v["share-net (no new net ns)"] = insert_before(full, "--unshare-user", ["--share-net"])
    v["no --disable-userns"] = drop(drop(full, "--disable-userns", 0),
                                    "--assert-userns-disabled", 0)  # fmt: skip
    v["no seccomp"] = drop(full, "--seccomp", 1)
    v["no --proc"] = drop(full, "--proc", 1)
    v["no --dev"] = drop(full, "--dev", 1)
    v["no /tmp, $HOME tmpfs"] = drop(drop(full, "--size", 1), "--tmpfs", 1)
    v["no --remount-ro /"] = drop(full, "--remount-ro", 1)
    nows = drop(drop(full, "--bind-fd", 2, str(WS_FD)), "--bind-fd", 2, str(APP_FD))
    v["no workspace binds (2)"] = drop(nows, "--chdir", 1)
    v["no /app alias"] = drop(full, "--bind-fd", 2, str(APP_FD))
    v["no /etc bind"] = drop(full, "--ro-bind-fd", 2)
    v["no json-status-fd"] = drop(full, "--json-status-fd", 1)
    # One more read-only bind, to price a bind (and its mountinfo parse) by itself.
    v["+1 --ro-bind"] = insert_before(full, "--proc", ["--ro-bind", "/usr/share", "/srv"])
    # Floors: the namespaces with only /usr mounted; a user and mount namespace alone; no bwrap
    # (the harness's own fork, cgroup join and exec of true).
    usr = ["--ro-bind", "/usr", "/usr", "--symlink", "usr/lib64", "/lib64",
           "--symlink", "usr/lib", "/lib"]  # fmt: skip
    v["floor: --unshare-all, /usr only"] = [BWRAP, "--unshare-all", *usr, "--", *CMD]
    v["floor: user+mount ns, /usr only"] = [BWRAP, "--unshare-user", *usr, "--", *CMD]
    v["floor: no bwrap"] = list(CMD)
    return v


def open_fds(root: Path) -> dict[int, int]:
    """Fresh fds for one run, at the numbers the argv names."""
    flags = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    want = {
        WS_FD: os.open(root / "ws", flags),
        APP_FD: os.open(root / "ws", flags),
        ETC_FD: os.open(root / "etc", flags),
        SECCOMP_FD: os.open(root / "seccomp.bpf", os.O_RDONLY | os.O_CLOEXEC),
    }
    r, w = os.pipe()
    want[STATUS_FD] = w
    out = {}
    for num, fd in want.items():
        os.dup2(fd, num, inheritable=False)
        os.close(fd)
        out[num] = num
    out[-1] = r
    return out


class CpuGroup:
    """A cpuacct cgroup (v1) of the runs: its usage counts every process of a run, including
    bwrap's inner processes that its outer process never reaps (rusage would miss those)."""

    def __init__(self) -> None:
        self.dir = Path(f"/sys/fs/cgroup/cpuacct/jbwrap-cost-{os.getpid()}")
        self.dir.mkdir()
        self.procs = str(self.dir / "cgroup.procs")
        self.mntns: int | None = None

    def usage_ns(self) -> int:
        return int((self.dir / "cpuacct.usage").read_text())

    def enter(self) -> None:
        """In the child before exec: join the group, then drop to the sandbox uid."""
        with open(self.procs, "w") as f:
            f.write("0")
        if self.mntns is not None and LIBC.setns(self.mntns, CLONE_NEWNS) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        os.setgroups([])
        os.setresgid(UID, UID, UID)
        os.setresuid(UID, UID, UID)

    def remove(self) -> None:
        self.dir.rmdir()


def run_once(
    argv: Argv, root: Path, group: CpuGroup, mntns: int | None = None
) -> tuple[float, float]:
    """(CPU ms of the bwrap tree, wall ms); ``mntns``: the mount namespace to start bwrap in."""
    group.mntns = mntns
    fds = open_fds(root)
    try:
        u0 = group.usage_ns()
        t = time.perf_counter()
        p = subprocess.Popen(argv, pass_fds=[f for k, f in fds.items() if k >= 0],
                             preexec_fn=group.enter, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        err = p.stderr.read() if p.stderr else b""
        rc = p.wait()
        wall = (time.perf_counter() - t) * 1000
        if rc != 0:
            raise RuntimeError(f"{argv}: exit {rc}: {err.decode()}")
        # the inner processes exit right after the outer one: wait until the group is empty
        while Path(group.procs).read_text().strip():
            time.sleep(0.0002)
        return (group.usage_ns() - u0) / 1e6, wall
    finally:
        for fd in fds.values():
            os.close(fd)


def kthreads_cpu_ns() -> int:
    """CPU used so far by the kernel's threads (children of kthreadd), in ns."""
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != 2:
                continue
            with open(f"/proc/{d}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def mount_ns_holder(script: str) -> tuple[subprocess.Popen[bytes], int]:
    """A process in a private copy of this mount namespace changed by ``script`` (the host's is
    untouched), and an fd of that namespace."""
    holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                               f"{script}; echo ready; exec sleep 100000"],
                              stdout=subprocess.PIPE)  # fmt: skip
    assert holder.stdout is not None
    if holder.stdout.readline().strip() != b"ready":
        raise RuntimeError(f"mount namespace set-up failed: {script}")
    return holder, os.open(f"/proc/{holder.pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)


def mount_lines(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/mountinfo") as f:
        return sum(1 for _ in f)


def ns_mount_lines(ns_fd: int) -> int:
    """How many mounts the mount namespace ``ns_fd`` has (what bwrap copies and re-reads)."""
    out = subprocess.run(["nsenter", f"--mount=/proc/self/fd/{ns_fd}", "cat",
                          "/proc/self/mountinfo"], pass_fds=[ns_fd], capture_output=True,
                         check=True).stdout  # fmt: skip
    return out.count(b"\n")


def prepare(root: Path) -> None:
    os.chmod(root, 0o711)
    ws = root / "ws"
    ws.mkdir(mode=0o700)
    os.chown(ws, UID, UID)
    write_etc_dir(root / "etc", uid=UID, gid=UID, network=False, layout=detect_host_layout())
    prog = seccomp.program()
    (root / "seccomp.bpf").write_bytes(prog or b"")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--block", type=int, default=20)
    ap.add_argument("--only", default="", help="comma-separated variant names")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument(
        "--host-mounts",
        type=int,
        default=100,
        help="also run full from a copy of this mount namespace with N more mounts "
        "(e.g. N sessions' workspace images) and from one without /sys; 0 = not",
    )
    args = ap.parse_args()
    cmd = CMD
    full = bwrap.build_bwrap_argv(BWRAP, full_config(), cmd)
    all_v = variants(full, None)
    names = [n.strip() for n in args.only.split(",")] if args.only else []
    if names:
        all_v = {n: all_v[n] for n in names if n in all_v}
    root = Path(tempfile.mkdtemp(prefix="jbwrap-cost-", dir="/tmp"))
    group = CpuGroup()
    holders: list[subprocess.Popen[bytes]] = []
    mntns: dict[str, int] = {}
    try:
        prepare(root)
        if spawnns is not None and (not names or SPAWN_NS in names):
            # what the runtime does (runtime.py): the same argv, from the spawn namespace
            needed = [*detect_host_layout().ro_dirs, BWRAP, str(root)]
            mntns[SPAWN_NS] = spawnns.create_spawn_namespace(needed)
            all_v[SPAWN_NS] = full
        if args.host_mounts:
            n = args.host_mounts
            script = (f"for i in $(seq {n}); do mkdir -p {root}/m/$i; "
                      f"mount -t tmpfs -o size=4k t {root}/m/$i; done")  # fmt: skip
            holder, ns_fd = mount_ns_holder(script)
            holders.append(holder)
            mntns[f"full +{n} host mounts"] = ns_fd
            all_v[f"full +{n} host mounts"] = full
        for name, argv in all_v.items():
            run_once(
                argv, root, group, mntns.get(name)
            )  # warm-up and a check that every variant runs
        cpu: dict[str, list[float]] = {n: [] for n in all_v}
        wall: dict[str, list[float]] = {n: [] for n in all_v}
        kthr: dict[str, list[float]] = {n: [] for n in all_v}
        lines = {n: ns_mount_lines(mntns[n]) if n in mntns else mount_lines() for n in all_v}
        load_start = os.getloadavg()
        for r in range(args.rounds):
            order = list(all_v)
            random.shuffle(order)
            for name in order:
                k0 = kthreads_cpu_ns()
                for _ in range(args.block):
                    c, w = run_once(all_v[name], root, group, mntns.get(name))
                    cpu[name].append(c)
                    wall[name].append(w)
                time.sleep(0.05)  # let deferred clean-up (net ns, RCU) land in this block
                kthr[name].append((kthreads_cpu_ns() - k0) / 1e6 / args.block)
            print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
        load_end = os.getloadavg()
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()
        for fd in mntns.values():
            os.close(fd)
        shutil.rmtree(root, ignore_errors=True)
        group.remove()
    base_cpu = statistics.median(cpu["full"])
    base_p99 = pct(cpu["full"], 99)
    rows: dict[str, Any] = {}
    print(f"load {load_start[0]:.2f} -> {load_end[0]:.2f}; host mounts: {mount_lines()}")
    print(f"{'variant':32} {'cpu p50':>8} {'p99':>7} {'x full':>7} {'p99 x':>6} "
          f"{'kthr/run':>9} {'wall p50':>9} {'mounts':>6}")  # fmt: skip
    for name in all_v:
        rows[name] = {
            "argv": all_v[name],
            "mounts_bwrap_starts_with": lines[name],
            "cpu_ms": summary(cpu[name], 3),
            "wall_ms": summary(wall[name], 3),
            "kthreads_ms_per_run": summary(kthr[name], 3),
            "cpu_ratio_vs_full": {
                "p50": round(statistics.median(cpu[name]) / base_cpu, 3),
                "p99": round(pct(cpu[name], 99) / base_p99, 3),
            },
        }
        print(f"{name:32} {statistics.median(cpu[name]):8.3f} {pct(cpu[name], 99):7.3f} "
              f"{statistics.median(cpu[name]) / base_cpu:7.3f} "
              f"{pct(cpu[name], 99) / base_p99:6.3f} {statistics.median(kthr[name]):9.3f} "
              f"{statistics.median(wall[name]):9.3f} {lines[name]:6d}")  # fmt: skip
    out = {
        "what": "CPU of one bwrap start (whole tree, rusage) running /usr/bin/true, by variant",
        "rounds": args.rounds,
        "block": args.block,
        "runs_per_variant": args.rounds * args.block,
        "load_start": load_start,
        "load_end": load_end,
        "bwrap": subprocess.run([BWRAP, "--version"], capture_output=True, text=True).stdout,
        "kernel": os.uname().release,
        "host_mount_lines": mount_lines(),
        "full_argv": full,
        "variants": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
