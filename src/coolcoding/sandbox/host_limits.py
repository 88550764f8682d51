"""Name the host-wide kernel limit behind a failure, so the error says what to raise.

A sandbox start can fail on limits the whole host shares: inotify instances and watches (one
instance per running session, taken by its agent and charged to the sandbox's own uid, not the
server's), open files, loop devices, pids, memory.
The generic "the sandbox failed to start" hid which; ``host_limit_message`` finds the errno in
the exception (or its causes) and names the limit with its current value, e.g.
``fs.inotify.max_user_instances (128) reached on the host``.
"""

from __future__ import annotations

import errno
import resource
from pathlib import Path

PROC_SYS = Path("/proc/sys")


def _sysctl(name: str) -> str:
    try:
        return (PROC_SYS / name.replace(".", "/")).read_text().split()[0]
    except (OSError, IndexError):
        return "?"


def _causes(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def describe_os_error(err: OSError) -> str | None:
    """The host limit ``err`` means, or ``None`` when it is not one."""
    text = str(err)
    if "inotify_init" in text and err.errno == errno.EMFILE:
        name = "fs.inotify.max_user_instances"
        return f"{name} ({_sysctl(name)}) reached on the host"
    if "inotify_add_watch" in text and err.errno == errno.ENOSPC:
        name = "fs.inotify.max_user_watches"
        return f"{name} ({_sysctl(name)}) reached on the host"
    if err.errno == errno.ENFILE:
        return f"fs.file-max ({_sysctl('fs.file-max')}) open files reached on the host"
    if err.errno == errno.EMFILE:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        return f"the server's open-file limit (RLIMIT_NOFILE {soft}) reached"
    if "loop" in text and err.errno in (errno.ENXIO, errno.ENODEV, errno.EBUSY, errno.ENOSPC):
        return "no free loop device on the host (raise the loop module's max_loop)"
    if err.errno == errno.ENOMEM:
        return f"out of memory on the host ({_mem_available_mib()} MiB available)"
    if err.errno == errno.EAGAIN and ("fork" in text or "spawn" in text or "clone" in text):
        return (
            f"no process can be created: kernel.pid_max ({_sysctl('kernel.pid_max')}) or "
            f"kernel.threads-max ({_sysctl('kernel.threads-max')}) reached on the host"
        )
    return None


def _mem_available_mib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return str(int(line.split()[1]) // 1024)
    except (OSError, ValueError, IndexError):
        pass
    return "?"


def sandbox_user_inotify_message() -> str:
    """The agent's message when the sandbox's uid has no inotify instance left."""
    name = "fs.inotify.max_user_instances"
    return f"{name} ({_sysctl(name)}) reached for the sandbox's user"


def host_limit_message(exc: BaseException) -> str | None:
    """The host limit behind ``exc`` or one of its causes, or ``None``."""
    for cause in _causes(exc):
        if getattr(cause, "code", None) == "host_limit":  # named by the sandbox's agent
            return str(getattr(cause, "message", cause))
        if isinstance(cause, OSError):
            found = describe_os_error(cause)
            if found is not None:
                return found
    return None
