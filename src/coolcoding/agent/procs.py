"""Kill every process of a session (a terminal's shell, an exec), found by session id in /proc.

Process groups are not enough: an interactive bash puts each job in its own group, and a program
may ``setpgid`` itself away. The session id stays (only ``setsid`` leaves it, and inside the
sandbox the sandbox's own teardown is the last word). The agent sees only its sandbox's pid
namespace, so the scan is small.
"""

from __future__ import annotations

import contextlib
import os
import signal


def session_members(sid: int) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rpartition(b")")[2].split()
        if len(fields) > 3 and int(fields[3]) == sid:
            pids.append(int(name))
    return pids


def kill_session(sid: int, sig: int = signal.SIGKILL) -> int:
    """Signal every process of session ``sid`` but its leader (the caller's own child, which it
    signals through its handle: once reaped, a new session leader may reuse the number; members
    keep it in use); how many were signalled."""
    count = 0
    for pid in session_members(sid):
        if pid == sid:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
            count += 1
    return count


def descendants(root: int) -> list[int]:
    """Every live descendant of ``root`` (by parent pid), even those that left its session."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(name))
    out: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            out.append(child)
            todo.append(child)
    return out


def kill_tree(root: int, rounds: int = 3) -> int:
    """SIGKILL the descendants of ``root`` (not ``root``: its owner kills it through its
    handle), again while new ones appear (a fork racing the kill); how many were signalled."""
    count = 0
    for _ in range(rounds):
        pids = descendants(root)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                count += 1
    return count
