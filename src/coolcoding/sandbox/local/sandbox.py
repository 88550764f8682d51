"""``LocalSandbox``: one session's sandbox on this host (a workspace dir, an /etc, cgroups).

"Starting" it is cheap: directories, the session cgroup with its limits, and state. Processes
only exist while a terminal or an exec is open; each lives in its own leaf cgroup under the
session's (``term-N`` / ``exec-N``), so the session's limits cover them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import AsyncIterator, Callable, Collection, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from ipaddress import IPv4Network
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coolcoding.sandbox.agent_terminal import AgentTerminal
from coolcoding.sandbox.base import (
    DiskUsage,
    ExecLimits,
    ExecResult,
    ExecStream,
    Sandbox,
    SandboxError,
    SandboxSpec,
    Terminal,
)
from coolcoding.sandbox.local import bwrap, network, seccomp
from coolcoding.sandbox.local.cgroups import Cgroup, CgroupLimits, CgroupManager
from coolcoding.sandbox.local.diskimage import WorkspaceImages
from coolcoding.sandbox.local.environment import HostEnvironment
from coolcoding.sandbox.local.exec_run import LocalExec
from coolcoding.sandbox.local.files import (
    WorkspaceFiles,
    disk_usage_bytes,
    disk_usage_bytes_upto,
)
from coolcoding.sandbox.local.process import (
    Credentials,
    SandboxProcess,
    rlimits_for,
    spawn_setup,
)
from coolcoding.sandbox.local.spawnns import SpawnNamespace
from coolcoding.sandbox.local.zygote import WarmProcess, encode_request, start_zygote

if TYPE_CHECKING:
    from coolcoding.agent.client import AgentClient
    from coolcoding.sandbox.local.capabilities import SandboxAgent, ZygoteBinary

log = logging.getLogger(__name__)
_PATH_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# RLIMIT_NPROC counts every process of the uid; leave room for bwrap's own two per process tree.
NPROC_SLACK = 16


IMAGE_FULL_SLACK_BYTES = 1024 * 1024
# Inline writes (``write_files``) also stay under this many files: each is an openat walk.
INLINE_WRITE_FILES = 16


class LocalSandbox(Sandbox):
    workspace_path = bwrap.SANDBOX_WORKSPACE

    def __init__(
        self,
        spec: SandboxSpec,
        *,
        host: HostEnvironment,
        creds: Credentials,
        workspace: Path,
        etc_dir: Path,
        cgroup_name: str,
        tmp_bytes: int,
        extra_ro_binds: Mapping[str, str],
        seccomp_program: bytes | None = None,
        disk_image: bool = False,
        inline_write_bytes: int = 0,
        inline_usage_entries: int = 0,
    ) -> None:
        self.spec = spec
        # Small file writes and small workspaces' measurements run on the event loop: a
        # thread hop (two context switches, the executor's queue) costs more than the work.
        self.inline_write_bytes = inline_write_bytes
        self.inline_usage_entries = inline_usage_entries
        # The workspace is a mounted image of the quota's size (diskimage.py): the kernel
        # enforces the quota; otherwise it is measured (after each exec, by the runtime).
        self.disk_image = disk_image
        self.seccomp_program = seccomp_program
        self.host = host
        self.creds = creds
        self.workspace = workspace
        self.etc_dir = etc_dir
        self.cgroup_name = cgroup_name
        self.tmp_bytes = tmp_bytes
        self.extra_ro_binds = dict(extra_ro_binds)
        self.files = WorkspaceFiles(str(workspace), creds.uid, creds.gid, chown=creds.drop)
        self.terminals: set[AgentTerminal] = set()
        self._counter = itertools.count(1)
        self.cgroup: Cgroup = self._cgroups.group(cgroup_name)
        self.stopped = False
        self._cleanups: set[asyncio.Task[None]] = set()
        self.warm: WarmProcess | None = None  # a pooled ephemeral sandbox's zygote
        self.pooled_execs = 0  # execs released from ``warm`` (0 or 1)
        # Its own network namespace and NAT, if the session has network (``start_network``).
        self.network: network.SandboxNetwork | None = None
        # A judge sandbox without network: its own loopback-only namespace, made once and kept
        # for all its jobs (``sandbox_judge_keep_netns``; -1: each bwrap makes a new one).
        self.loopback_netns = -1
        # A judge sandbox's bwrap starts from this mount namespace (spawnns.py); None: the host's.
        self.spawn_ns: SpawnNamespace | None = None
        # A session sandbox's agent (agents.py): its first process, holding its terminals.
        self.agent: SandboxAgent | None = None
        # The server whose cgroup subtree and data dir hold it, when it is not this one (taken
        # over from a dead replica with its own data dir: ``LocalRuntime._adopt``).
        self.owner: str | None = None

    @property
    def _cgroups(self) -> CgroupManager:
        return self.host.cgroups

    def create_cgroup(self) -> None:
        spec = self.spec
        self.cgroup.close()  # a memory.peak fd of an accounting reset: never read for it
        self.cgroup = self._cgroups.create(
            self.cgroup_name,
            CgroupLimits(memory_bytes=spec.memory_mb * 1024 * 1024, pids=spec.pids, cpus=spec.cpus),
            inner=True,
            known=self.cgroup,  # a reused or pooled sandbox's: unchanged limits not rewritten
        )

    def bump_counter(self) -> None:
        """Leaf names after those an earlier server process created (an adopted sandbox)."""
        existing = 0
        for d in self.cgroup.paths:
            with contextlib.suppress(OSError):
                for e in os.scandir(d):
                    tail = e.name.rpartition("-")[2]
                    if e.is_dir(follow_symlinks=False) and tail.isdigit():
                        existing = max(existing, int(tail))
        self._counter = itertools.count(existing + 1)

    def new_leaf(self, kind: str, limits: CgroupLimits) -> Cgroup:
        if self.stopped:
            raise SandboxError("stopped", "The sandbox was stopped.")
        return self._cgroups.create(f"{self.cgroup_name}/{kind}-{next(self._counter)}", limits)

    async def start_network(
        self, *, slirp_path: str, allow: Sequence[IPv4Network], timeout_s: float
    ) -> None:
        """Create the sandbox's network namespace (network.py); before any process starts."""
        if self.network is not None:
            return
        leaf = self.new_leaf("net", CgroupLimits())
        try:
            self.network = await network.SandboxNetwork.create(
                slirp_path=slirp_path, allow=allow, cgroup=leaf, timeout_s=timeout_s
            )
        except BaseException:
            await asyncio.to_thread(leaf.remove)
            raise

    async def adopt_network(
        self,
        state: Mapping[str, Any] | None,
        *,
        is_agent: Callable[[int], bool],
        slirp_path: str,
        timeout_s: float,
    ) -> None:
        """The namespace and NAT of this (adopted) sandbox, which a previous server process
        started: found through its agent (network.py, ``SandboxNetwork.adopt``)."""
        pid = self.agent.pid if self.agent is not None else None
        if pid is None:
            raise SandboxError("network_unavailable",
                               "Network access is not available for this sandbox.",
                               "the agent's pid is unknown: its namespace cannot be found")  # fmt: skip
        self.network = await network.SandboxNetwork.adopt(
            session_uuid=self.spec.session_uuid,
            agent_pid=pid,
            is_agent=is_agent,
            state=state,
            session_cgroup_dirs=self.cgroup.paths,
            slirp_path=slirp_path,
            new_leaf=lambda: self.new_leaf("net", CgroupLimits()),
            timeout_s=timeout_s,
        )

    def join_netns(self) -> int | None:
        """The fd of the sandbox's namespace, which a spawned child enters; fail closed: a
        network-enabled sandbox without its namespace spawns nothing (never the host's)."""
        if not self.spec.network:
            return self.loopback_netns if self.loopback_netns >= 0 else None
        if self.network is None or self.network.netns_fd < 0:
            raise SandboxError("network_unavailable",
                               "Network access is not available for this sandbox.",
                               "the sandbox's network namespace is gone")  # fmt: skip
        return self.network.netns_fd

    async def spawn(
        self,
        command: list[str],
        *,
        cgroup: Cgroup,
        stdin: int,
        stdout: int,
        stderr: int,
        cwd: str | None,
        env: Mapping[str, str] | None,
        cpu_s: float | None = None,
        file_size: int | None = None,
        json_status_fd: int | None = None,
        terminal: bool = False,
        extra_fds: Sequence[int] = (),
        rlimits: Sequence[tuple[int, tuple[int, int]]] | None = None,
    ) -> SandboxProcess:
        """Start ``command`` in this sandbox (bwrap as the session uid, in ``cgroup``)."""
        join_netns = self.join_netns()
        if join_netns is not None:  # this call's own: a stop closing the sandbox's meanwhile
            join_netns = os.dup(join_netns)  # can never let its number name another namespace
        ws_fd = os.open(self.workspace, _PATH_FLAGS)
        fds = [ws_fd]
        try:
            fds.append(os.dup(ws_fd))
            fds.append(os.open(self.etc_dir, _PATH_FLAGS))
            seccomp_fd = None
            if self.seccomp_program is not None:
                seccomp_fd = seccomp.program_fd(self.seccomp_program)
                fds.append(seccomp_fd)
            cfg = bwrap.BwrapConfig(
                layout=self.host.layout,
                uid=self.creds.uid,
                gid=self.creds.gid,
                workspace_fd=fds[0],
                app_alias_fd=fds[1],
                etc_fd=fds[2],
                # With network, the pre-exec joined the sandbox's own namespace: bwrap keeps it.
                network=join_netns is not None,
                new_session=not terminal,
                cwd=cwd or bwrap.SANDBOX_WORKSPACE,
                tmp_bytes=self.tmp_bytes,
                home_bytes=self.tmp_bytes,
                extra_ro_binds=self.extra_ro_binds,
                json_status_fd=json_status_fd,
                seccomp_fd=seccomp_fd,
            )
            argv = bwrap.build_bwrap_argv(self.host.bwrap_path, cfg, command)
            rl = self.exec_rlimits(cpu_s, file_size) if rlimits is None else rlimits
            setup = spawn_setup(
                self.creds, cgroup.procs_files, rl, controlling_tty=terminal, netns_fd=join_netns,
                mntns_fd=self.spawn_ns.fd if self.spawn_ns is not None else None,
            )  # fmt: skip
            pass_fds = [*fds, *extra_fds] + ([json_status_fd] if json_status_fd is not None else [])
            return await SandboxProcess.spawn(
                argv,
                env=bwrap.sandbox_env({**self.spec.env, **(env or {})}),
                setup=setup,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                pass_fds=pass_fds,
                new_session=terminal,
            )
        finally:
            for fd in fds:
                os.close(fd)
            if join_netns is not None:
                os.close(join_netns)

    def close_loopback_netns(self) -> None:
        """Drop the kept loopback namespace (it ends with the last process in it)."""
        fd, self.loopback_netns = self.loopback_netns, -1
        if fd >= 0:
            os.close(fd)

    def exec_rlimits(
        self, cpu_s: float | None, file_size: int | None
    ) -> list[tuple[int, tuple[int, int]]]:
        return rlimits_for(
            nproc=self.spec.pids + NPROC_SLACK,
            fsize=file_size if file_size is not None else self.spec.disk_bytes,
            cpu_s=cpu_s,
        )

    async def start_zygote(self, timeout_s: float, binary: ZygoteBinary | None = None) -> None:
        """Pre-start this (ephemeral, unused) sandbox's first exec as a zygote: see zygote.py
        (``binary``: the C zygote, czygote.py; ``None``: bash)."""
        self.warm = await start_zygote(self, timeout_s, binary)

    def _take_warm(
        self, argv: list[str], cwd: str | None, env: Mapping[str, str] | None, limits: ExecLimits
    ) -> tuple[WarmProcess, bytes] | None:
        """The zygote, for the first exec only, if it can run this request exactly like bwrap."""
        warm, self.warm = self.warm, None
        if warm is None:
            return None
        full_env = bwrap.sandbox_env({**self.spec.env, **(env or {})})
        rlimits = self.exec_rlimits(limits.cpu_s, limits.file_size_bytes)
        request = encode_request(argv, cwd or bwrap.SANDBOX_WORKSPACE, full_env, rlimits)
        if request is not None and warm.usable():
            return warm, request
        self.track_cleanup(warm.discard())  # its processes would count against the limits
        return None

    async def _start_exec(
        self,
        argv: list[str],
        stdin: bytes,
        limits: ExecLimits | None,
        cwd: str | None,
        env: Mapping[str, str] | None,
        stream: bool,
    ) -> LocalExec:
        def new_run() -> LocalExec:
            return LocalExec(self, argv, stdin=stdin, limits=limits, cwd=cwd, env=env,
                             stream=stream)  # fmt: skip

        taken = self._take_warm(argv, cwd, env, limits or ExecLimits())
        if taken is not None:
            run = new_run()
            try:
                await run.start_warm(*taken)
            except (OSError, SandboxError):  # e.g. a limit the kernel refused: not released
                log.warning("zygote of %s not usable", self.spec.session_uuid, exc_info=True)
                self.track_cleanup(taken[0].discard())
            else:
                self.pooled_execs += 1
                return run
        run = new_run()
        await run.start()
        return run

    async def open_terminal(
        self, cols: int, rows: int, env: Mapping[str, str] | None = None
    ) -> Terminal:
        """A shell on a PTY of the sandbox's agent (a session sandbox's first process)."""
        client = await self.connect_agent()
        try:
            term = await AgentTerminal.open(
                client, cols, rows, env,
                pid=(self.agent.pid if self.agent else None) or -1,
                on_close=self.terminals.discard,
            )  # fmt: skip
        except BaseException:
            await client.close()
            raise
        self.terminals.add(term)
        return term

    async def exec(
        self,
        argv: list[str],
        *,
        stdin: bytes = b"",
        limits: ExecLimits | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult:
        run = await self._start_exec(argv, stdin, limits, cwd, env, stream=False)
        try:
            return await run.result()
        except BaseException:
            run.kill_now()
            raise

    async def start_connected(
        self,
        argv: list[str],
        *,
        stdin_fd: int,
        stdout_fd: int,
        limits: ExecLimits | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> LocalExec:
        """Start ``argv`` with the caller's ``stdin_fd``/``stdout_fd`` as its fds 0 and 1 (base.py).
        Never through the zygote, whose stdin and stdout are its own pipes: an unused one is
        discarded (its processes would count against the limits)."""
        if self.warm is not None:
            warm, self.warm = self.warm, None
            self.track_cleanup(warm.discard())
        run = LocalExec(self, argv, stdin=b"", limits=limits, cwd=cwd, env=env, stream=False,
                        stdin_fd=stdin_fd, stdout_fd=stdout_fd)  # fmt: skip
        await run.start()
        return run

    @asynccontextmanager
    async def _exec_stream(
        self,
        argv: list[str],
        stdin: bytes,
        limits: ExecLimits | None,
        cwd: str | None,
        env: Mapping[str, str] | None,
    ) -> AsyncIterator[ExecStream]:
        run = await self._start_exec(argv, stdin, limits, cwd, env, stream=True)
        try:
            yield run
        finally:
            run.kill_now()
            with contextlib.suppress(SandboxError):
                await run.result()

    def exec_stream(
        self,
        argv: list[str],
        *,
        stdin: bytes = b"",
        limits: ExecLimits | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> contextlib.AbstractAsyncContextManager[ExecStream]:
        return self._exec_stream(argv, stdin, limits, cwd, env)

    async def write_files(
        self, files: Mapping[str, bytes | None], executables: Collection[str] = ()
    ) -> None:
        """Write (``None``: delete) workspace files: inline when they are few and small
        (``sandbox_inline_write_bytes`` in all), else in a thread."""
        size = sum(len(data) for data in files.values() if data is not None)
        if size <= self.inline_write_bytes and len(files) <= INLINE_WRITE_FILES:
            self.files.apply(files, executables)
        else:
            await asyncio.to_thread(self.files.apply, files, executables)

    async def read_file(self, path: str) -> bytes:
        return await asyncio.to_thread(self.files.read, path)

    async def disk_usage(self) -> DiskUsage:
        if self.disk_image:
            return await asyncio.to_thread(WorkspaceImages.usage, self.workspace)
        used = None
        if self.inline_usage_entries > 0:  # a judge job's few files: measured here
            used = disk_usage_bytes_upto(str(self.workspace), self.inline_usage_entries)
        if used is None:
            used = await asyncio.to_thread(disk_usage_bytes, str(self.workspace))
        return DiskUsage(used, self.spec.disk_bytes)

    async def over_quota(self) -> bool:
        """Whether an exec ran into the quota: over it (measured), or filled it (image).

        An image counts as filled with less than ``IMAGE_FULL_SLACK_BYTES`` free: right after a
        write failed with ENOSPC, ext4's delayed-allocation reservations can still show a few
        free blocks in statvfs (seen under load), and a write of one larger block can fail while
        a smaller one is still free."""
        usage = await self.disk_usage()
        if self.disk_image:
            return usage.limit_bytes - usage.used_bytes < IMAGE_FULL_SLACK_BYTES
        return usage.used_bytes > usage.limit_bytes

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "uid": self.creds.uid,
            "gid": self.creds.gid,
            "workspace": str(self.workspace),
            "cgroups": self.cgroup.paths,
        }
        if self.agent is not None:
            state["agent"] = self.agent.state()
        if self.network is not None:
            state["network"] = self.network.state()
        if self.owner is not None:
            state["server"] = self.owner  # services/sandboxes.py OWNER_KEY: not ours to clean
        return state

    async def connect_agent(self) -> AgentClient:
        if self.agent is None or self.stopped:
            return await super().connect_agent()
        return await self.agent.connect()

    async def wait_ended(self) -> str:
        if self.agent is None:
            return await super().wait_ended()
        return await self.agent.wait_ended()

    def track_cleanup(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a post-exec cleanup in the background; ``stop`` waits for all of them."""
        task = asyncio.get_running_loop().create_task(coro)
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def quiesce(self) -> None:
        """Before a wipe (reuse.py): drop an unused zygote, wait for the exec clean-ups."""
        if self.warm is not None:
            warm, self.warm = self.warm, None
            self.track_cleanup(warm.discard())
        await self.settled()
        self.pooled_execs = 0

    async def settled(self) -> None:
        """Wait for the clean-ups of the execs that ended: an exec's result comes once every
        process of it is killed, before they have all finished exiting and been reaped."""
        if self._cleanups:
            await asyncio.gather(*self._cleanups, return_exceptions=True)

    async def stop(self) -> None:
        """Kill every process of the session and remove its cgroups; keep the files."""
        self.stopped = True
        if self.warm is not None:
            warm, self.warm = self.warm, None
            self.track_cleanup(warm.discard())
        terms = list(self.terminals)  # their shells die with the agent, below
        await asyncio.gather(*(term.close(kill=False) for term in terms))
        self.terminals.clear()
        if self._cleanups:
            await asyncio.gather(*self._cleanups, return_exceptions=True)
        if self.agent is not None:
            self.agent.forget()
            if self.agent.process is not None:
                await self.agent.process.stop()
        if self.network is not None:
            await self.network.close()
        self.close_loopback_netns()
        await asyncio.to_thread(self.cgroup.remove)
