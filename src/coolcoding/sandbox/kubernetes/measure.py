"""Run one program with limits and measure it (standard library only; runs inside a session pod
for ``Sandbox.exec``: the pod has no per-exec cgroup, so CPU time, file size and wall time are
rlimits and a deadline, memory is sampled and enforced here, and peak memory and CPU time come
from ``wait4``'s rusage and the samples).

The status goes to stderr after the program ended, behind a per-run nonce the server sends as
the first line of stdin: the program never sees the nonce (it is not in argv, the environment,
or this process's memory, which is made non-dumpable), so it cannot forge a status.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sys
import threading
import time

NONCE_LEN = 32
MARK = b"\n\x00coolcoding-status:"
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def group_rss_kb(pgid: int) -> int:
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if len(fields) > 21 and int(fields[2]) == pgid:  # pgrp; rss in pages is field 24
            total += int(fields[21]) * PAGE_KB
    return total


def read_exact(fd: int, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = os.read(fd, n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def main(argv: list[str]) -> None:
    opts: dict[str, float] = {}
    while argv and argv[0] != "--":
        opts[argv[0].lstrip("-").replace("-", "_")] = float(argv[1])
        argv = argv[2:]
    program = argv[1:]
    nonce = read_exact(0, NONCE_LEN + 1)[:NONCE_LEN]
    import ctypes

    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: the nonce stays private
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            os.setpgid(0, 0)
            # In the pod's memory cgroup, the kernel's OOM killer must pick the program, never
            # the agent (which would end the session): raising one's own score needs no privilege.
            with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
                f.write("1000")
            if "cpu_s" in opts:
                soft = max(1, int(opts["cpu_s"] + 0.999))
                resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 1))
            if "fsize" in opts:
                resource.setrlimit(resource.RLIMIT_FSIZE, (int(opts["fsize"]),) * 2)
            os.execvp(program[0], program)  # noqa: S606 (argv, never a shell)
        except OSError as e:
            os.write(2, f"{program[0]}: {e.strerror}\n".encode())
        os._exit(127)
    peak = [0]
    hit: list[str] = []
    done = threading.Event()
    limit_kb = int(opts.get("memory_mb", 0) * 1024)
    wall = opts.get("wall_s", 0.0)

    def watch() -> None:
        while not done.wait(0.01):
            rss = group_rss_kb(pid)
            peak[0] = max(peak[0], rss)
            if limit_kb and rss > limit_kb:
                hit.append("memory")
            elif wall and time.monotonic() - t0 > wall:
                hit.append("wall")
            else:
                continue
            with_suppress_kill(pid)
            return

    threading.Thread(target=watch, daemon=True).start()
    _, status, usage = os.wait4(pid, 0)
    done.set()
    with_suppress_kill(pid)  # no background child outlives the program
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    # SIGXCPU comes only from RLIMIT_CPU (soft); SIGKILL at the hard limit one second later.
    cpu = usage.ru_utime + usage.ru_stime
    if not hit and (sig == signal.SIGXCPU or (sig == signal.SIGKILL and "cpu_s" in opts
                                               and cpu >= opts["cpu_s"])):  # fmt: skip
        hit.append("cpu")
    if not hit and sig == signal.SIGXFSZ:
        hit.append("disk")
    result = {
        "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": sig,
        "cpu_ms": (usage.ru_utime + usage.ru_stime) * 1000,
        "memory_kb": max(usage.ru_maxrss, peak[0]),
        "wall_ms": (time.monotonic() - t0) * 1000,
        "limit_hit": hit[0] if hit else None,
    }
    os.write(2, MARK + nonce + json.dumps(result).encode() + b"\n")


def with_suppress_kill(pgid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGKILL)


if __name__ == "__main__":
    main(sys.argv[1:])
