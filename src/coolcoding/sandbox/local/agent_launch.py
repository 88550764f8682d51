"""Start ``coolcoding.agent`` as the first process of a local sandbox (bwrap). ``LocalRuntime``
starts one per session sandbox (its terminals live there); judge/ephemeral sandboxes and
``exec`` keep the per-exec bwrap path (per-exec cgroup accounting).

The agent runs as the sandbox uid on the sandbox's own ``/usr/bin/python3`` (it imports only
the standard library and this package, bound read-only); its unix socket is created in a host
directory that belongs to this sandbox alone (mode 0700, owned by its uid), bound at
``/run/coolcoding``, so the server (root) reaches it and no other sandbox does. The secret is
written into a pipe the agent reads and closes: it is never in argv, the environment or a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import coolcoding
from coolcoding.sandbox.local import bwrap, seccomp
from coolcoding.sandbox.local.cgroups import Cgroup, CgroupLimits
from coolcoding.sandbox.local.etcroots import mounted_children
from coolcoding.sandbox.local.process import SandboxProcess, spawn_setup
from coolcoding.sandbox.local.sandbox import LocalSandbox
from coolcoding.settings import Settings

_PATH_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
SOCKET_NAME = "agent.sock"
PACKAGE_DIR = str(Path(coolcoding.__file__).resolve().parent)
_PACKAGE_FILES = ("*.py", "*.sh")  # what the agent imports or reads (shell integration)
_COPY_FORMAT = "pyc-2"  # changes the copy's name when its layout changes
# In a copy made by a build whose servers hold their copy (``_HELD``): only such copies are
# removed by ``reclaim_agent_copies`` (an older build's server would not hold its own).
LOCKING_MARK = ".held-by-flock"
AGENT_PYTHON = "/usr/bin/python3"  # the interpreter the agent runs on (the sandbox's /usr)
log = logging.getLogger(__name__)


def _package_files(root: Path) -> list[Path]:
    return sorted(p for pattern in _PACKAGE_FILES for p in root.rglob(pattern) if p.is_file())


def agent_copy_name(source: str = PACKAGE_DIR, python: str = AGENT_PYTHON) -> str:
    """The name of this code version's copy (``agent_package_copy``): ``cc-agent-<digest>``."""
    root = Path(source)
    digest = hashlib.sha256(f"{_COPY_FORMAT}|{python}\0".encode())
    for f in _package_files(root):
        digest.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return f"cc-agent-{digest.hexdigest()[:16]}"


# The copies this process uses, each with a shared flock held for the process's life: another
# server's clean-up (``reclaim_agent_copies``) removes only copies nobody holds.
_HELD: dict[str, int] = {}


def _hold(target: Path) -> bool:
    """Hold the copy ``target`` (see ``_HELD``); False when it is gone, e.g. removed by a
    clean-up while this waited for the lock (then it is made again)."""
    if str(target) in _HELD:
        return True
    try:
        fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:  # still the copy at that path, not removed (nor replaced) meanwhile
        whole = stat.S_ISDIR(os.stat("coolcoding", dir_fd=fd).st_mode)
        same = os.stat(target).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        whole = same = False
    if not (whole and same):
        os.close(fd)
        return False
    _HELD[str(target)] = fd
    return True


def agent_package_copy(
    tmpfs_dir: Path, source: str = PACKAGE_DIR, python: str = AGENT_PYTHON
) -> str:
    """A read-only copy of the package's code in a tmpfs, named by its content's hash.

    The agent's bind mount source shows in the sandbox's /proc/self/mountinfo (a bind's root is
    its path inside its file system): bound from the server's install it would name the host's
    source tree; from here it names ``/cc-agent-<hash>/coolcoding`` of a tmpfs. The copy is
    shared by every sandbox of this code version, survives the server (sandboxes outlive it)
    and is made once (a new directory renamed into place, so concurrent servers agree). This
    process holds it (``_HELD``) until it exits.

    The copy holds its bytecode, compiled once by the agent's own interpreter (``python``)
    with unchecked hashes (the directory's name already changes with the source): read-only,
    the agent could write no ``__pycache__`` and compiled every module at every start."""
    target = tmpfs_dir / agent_copy_name(source, python)
    for _ in range(5):
        if not (target / "coolcoding").is_dir():
            _make_copy(Path(source), target, python)
        if _hold(target):
            break
    return str(target / "coolcoding")


def _make_copy(root: Path, target: Path, python: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cc-agent-tmp-", dir=target.parent))
    for f in _package_files(root):
        dest = tmp / "coolcoding" / f.relative_to(root)
        dest.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        shutil.copyfile(f, dest)
    compiled = subprocess.run(
        [python, "-I", "-S", "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
         str(tmp / "coolcoding")],
        capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    if compiled.returncode != 0:  # still works, only slower: the agent compiles at each start
        log.warning("compiling the agent's code failed: %s", compiled.stdout + compiled.stderr)
    (tmp / LOCKING_MARK).touch()
    for p in tmp.rglob("*"):
        if not p.is_dir():
            os.chmod(p, 0o444)
    for d in [tmp, *(p for p in tmp.rglob("*") if p.is_dir())]:
        os.chmod(d, 0o555)  # noqa: S103 (read and search for the sandbox's uid)
    try:
        os.rename(tmp, target)
    except OSError:  # made meanwhile by another server
        shutil.rmtree(tmp, ignore_errors=True)


def reclaim_agent_copies(tmpfs_dir: Path, keep: str) -> int:
    """Remove the copies of other code versions (``cc-agent-<digest>``, 5 MB each, in memory)
    made by builds whose servers hold their copy (``LOCKING_MARK``), that no live server holds
    (``_HELD``) and no mount on the host uses (a sandbox whose server is gone still runs its
    agent from its copy). ``keep``: this version's name. Each is locked exclusively while it
    is checked and removed, so a server that wants it meanwhile waits, finds it gone and makes
    it again. Returns how many."""
    locked: list[tuple[str, int]] = []
    with contextlib.suppress(OSError), os.scandir(tmpfs_dir) as entries:
        for entry in entries:
            if not re.fullmatch(r"cc-agent-[0-9a-f]{16}", entry.name) or entry.name == keep:
                continue
            if not entry.is_dir(follow_symlinks=False):
                continue
            if entry.stat(follow_symlinks=False).st_uid != os.geteuid():
                continue
            if not os.path.exists(os.path.join(entry.path, LOCKING_MARK)):
                continue  # an older build's: its live servers hold no lock to tell us
            fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a live server holds it
                os.close(fd)
                continue
            locked.append((entry.path, fd))
    removed = 0
    try:
        if locked:
            used = mounted_children(str(tmpfs_dir), [os.path.basename(p) for p, _ in locked])
            for path, _fd in locked:
                name = os.path.basename(path)
                if used is not None and not any(root == name for root, _child in used):
                    shutil.rmtree(path, ignore_errors=True)
                    removed += not os.path.exists(path)
    finally:
        for _path, fd in locked:
            os.close(fd)
    if removed:
        log.info("removed %d agent code copies of other versions from %s", removed, tmpfs_dir)
    return removed


@dataclass
class AgentProcess:
    proc: SandboxProcess
    cgroup: Cgroup
    socket_path: str  # host path of the agent's socket
    pid: int  # the agent's pid inside the sandbox
    status_fd: int

    def host_pid(self) -> int | None:
        """The agent's pid as the host sees it (the python3 process in the agent's cgroup)."""
        for procs in self.cgroup.procs_files:
            with contextlib.suppress(OSError):
                for pid in Path(procs).read_text().split():
                    with contextlib.suppress(OSError):
                        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                        if argv[0].endswith(b"python3") and b"coolcoding.agent" in argv:
                            return int(pid)
        return None

    async def stop(self) -> None:
        """Kill the agent and everything it started (the whole cgroup), reap, clean up."""
        self.proc.terminate_tree(self.cgroup)
        await self.proc.wait()
        status = b""
        with contextlib.suppress(OSError):
            status = os.read(self.status_fd, 65536)
        os.close(self.status_fd)
        await self.proc.reap_orphan(status)
        await asyncio.to_thread(self.cgroup.remove)


def prepare_socket_dir(path: Path, uid: int, gid: int) -> None:
    """The sandbox's private socket directory: its parents must be root's and o+x only."""
    path.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def agent_limits(settings: Settings) -> dict[str, object]:
    """The agent's command-line limits (``AgentLimits`` fields) from the server's settings."""
    return {
        "max_frame_bytes": settings.agent_max_frame_bytes,
        "max_connections": settings.agent_max_connections,
        "max_terminals": settings.terminal_max_per_session,
        "scrollback_bytes": settings.terminal_scrollback_bytes,
        "command_output_bytes": settings.terminal_command_output_bytes,
        "max_file_bytes": settings.max_file_bytes,
        "max_list_entries": settings.agent_max_list_entries,
        "exec_timeout_s": settings.agent_exec_timeout_s,
        "exec_output_bytes": settings.agent_exec_output_bytes,
        "watch_debounce_ms": settings.sync_debounce_ms,
        "watch_max_delay_ms": max(settings.sync_debounce_ms, 500),
        "watch_max_watches": settings.max_workspace_items,
        "watch_max_pending": settings.sync_backlog_max,
    }


def agent_argv(
    python: str, secret_fd: int, ready_fd: int, limits: Mapping[str, object] | None = None
) -> list[str]:
    argv = [python, "-S", "-m", "coolcoding.agent",
            "--socket", f"{bwrap.AGENT_SOCKET_DIR}/{SOCKET_NAME}",
            "--workspace", bwrap.SANDBOX_WORKSPACE,
            "--secret-fd", str(secret_fd), "--ready-fd", str(ready_fd)]  # fmt: skip
    for name, value in (limits or {}).items():
        argv += ["--" + name.replace("_", "-"), str(value)]
    return argv


async def start_agent(
    sandbox: LocalSandbox,
    socket_dir: Path,
    secret: bytes,
    *,
    python: str = AGENT_PYTHON,
    limits: Mapping[str, object] | None = None,
    log_fd: int = 2,
    outlive_server: bool = False,
    package_dir: str = PACKAGE_DIR,
) -> AgentProcess:
    """Spawn the agent in ``sandbox`` and wait until its socket accepts connections.

    ``outlive_server``: no ``--die-with-parent``; with ``new_session`` and its own cgroup, a
    SIGKILL or a restart of the server reaches no process of the sandbox (reparented to init
    or the nearest subreaper). A network-enabled sandbox's agent joins its namespace first.
    The caller bounds the wait (``asyncio.timeout``); on cancellation the agent is killed."""
    join_netns = sandbox.join_netns()
    prepare_socket_dir(socket_dir, sandbox.creds.uid, sandbox.creds.gid)
    cg = sandbox.new_leaf("agent", CgroupLimits())
    secret_r, secret_w = os.pipe()
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    fds = [os.open(sandbox.workspace, _PATH_FLAGS)]
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.write(secret_w, secret)
        os.close(secret_w)
        secret_w = -1
        fds.append(os.dup(fds[0]))
        fds.append(os.open(sandbox.etc_dir, _PATH_FLAGS))
        seccomp_fd = None
        if sandbox.seccomp_program is not None:
            seccomp_fd = seccomp.program_fd(sandbox.seccomp_program)
            fds.append(seccomp_fd)
        cfg = bwrap.BwrapConfig(
            layout=sandbox.host.layout, uid=sandbox.creds.uid, gid=sandbox.creds.gid,
            workspace_fd=fds[0], app_alias_fd=fds[1], etc_fd=fds[2],
            network=sandbox.spec.network, new_session=True,
            tmp_bytes=sandbox.tmp_bytes, home_bytes=sandbox.tmp_bytes,
            extra_ro_binds=sandbox.extra_ro_binds, json_status_fd=status_w,
            seccomp_fd=seccomp_fd, agent_package_dir=package_dir,
            agent_socket_dir=str(socket_dir), die_with_parent=not outlive_server,
        )  # fmt: skip
        argv = bwrap.build_bwrap_argv(
            sandbox.host.bwrap_path, cfg, agent_argv(python, secret_r, ready_w, limits)
        )
        rl = sandbox.exec_rlimits(None, None)
        env = bwrap.sandbox_env({**sandbox.spec.env, "PYTHONPATH": bwrap.AGENT_PYTHONPATH})
        proc = await SandboxProcess.spawn(
            argv, env=env, setup=spawn_setup(sandbox.creds, cg.procs_files, rl,
                                                controlling_tty=False, netns_fd=join_netns),
            stdin=devnull, stdout=log_fd, stderr=log_fd,
            pass_fds=[*fds, secret_r, ready_w, status_w], new_session=True,
        )  # fmt: skip
    except BaseException:
        for fd in (ready_r, status_r):
            os.close(fd)
        cg.remove()
        raise
    finally:
        for fd in (*fds, devnull, secret_r, ready_w, status_w):
            os.close(fd)
        if secret_w >= 0:
            os.close(secret_w)
    agent = AgentProcess(proc, cg, str(socket_dir / SOCKET_NAME), -1, status_r)
    try:
        line = await _read_line(ready_r)
    except BaseException:
        await agent.stop()
        raise
    finally:
        os.close(ready_r)
    if not line.startswith(b"ready "):
        await agent.stop()
        raise RuntimeError(f"the agent did not start (exit status {proc.status})")
    agent.pid = int(line.split()[1])
    return agent


async def _read_line(fd: int) -> bytes:
    """One line from a pipe, on the event loop (empty when the writer exits first)."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    buf = b""
    got: asyncio.Event = asyncio.Event()
    loop.add_reader(fd, got.set)
    try:
        while not buf.endswith(b"\n"):
            await got.wait()
            got.clear()
            try:
                chunk = os.read(fd, 256)
            except BlockingIOError:
                continue
            if not chunk:
                break
            buf += chunk
    finally:
        loop.remove_reader(fd)
    return buf
