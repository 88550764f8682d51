"""``LocalRuntime``: sandboxes on this host with bubblewrap, cgroups (v1 or v2) and rlimits.

Persistent state lives on disk (the workspace directory survives restarts; the DB is the
truth), the in-memory table only knows which sandboxes this process started. A previous
process's leftovers are found by name under this server's own cgroup subtree
(``<sandbox_cgroup_parent>/<server id>``, see identity.py) and in its data dir
(``cleanup_orphans``): another server on the same host is never touched, but for the generated
/etc dirs of another server's provably dead process that no mount uses (etcroots.py).

Disk quota (``sandbox_disk_quota``): ``image`` (default) mounts a filesystem image of the
quota's size at each session's workspace (diskimage.py), so the kernel refuses writes beyond it
(ENOSPC). ``measured`` bounds each file by RLIMIT_FSIZE and measures the workspace after every
exec (``limit_hit="disk"``) and every ``sandbox_disk_check_interval_s`` for sandboxes with
terminals, whose processes are then stopped: a program can overshoot by one interval's writes.
Ephemeral (judge) sandboxes are always measured: short-lived, RLIMIT_FSIZE and wall-time bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from coolcoding.agent.client import AgentClient, AgentConnectionLost, AgentError
from coolcoding.sandbox.agent_sandbox import AgentSandbox
from coolcoding.sandbox.base import Runtime, Sandbox, SandboxError, SandboxSpec
from coolcoding.sandbox.local import bwrap, seccomp
from coolcoding.sandbox.local.agent_launch import (
    agent_copy_name,
    agent_limits,
    agent_package_copy,
    reclaim_agent_copies,
    start_agent,
)
from coolcoding.sandbox.local.agents import (
    AgentFiles,
    AgentHandle,
    agent_answers,
    connect_agent,
    forget_agent_files,
    is_agent_of,
    is_clean_abs,
    locate_agent,
)
from coolcoding.sandbox.local.czygote import CACHE_DIR, ZygoteChoice, ZygoteUnavailable
from coolcoding.sandbox.local.diskimage import WorkspaceImages
from coolcoding.sandbox.local.environment import HostEnvironment, check_environment
from coolcoding.sandbox.local.etcdir import EtcTemplates
from coolcoding.sandbox.local.etcroots import (
    OWNER,
    claim_etc_dir,
    etc_root_tag,
    make_etc_root,
    reclaim_dead_etc_roots,
)
from coolcoding.sandbox.local.files import disk_usage_bytes_upto
from coolcoding.sandbox.local.keyedlock import KeyedLock
from coolcoding.sandbox.local.network import new_loopback_netns
from coolcoding.sandbox.local.pool import WarmPool
from coolcoding.sandbox.local.process import become_subreaper, credentials_for
from coolcoding.sandbox.local.reuse import ReusePool, clear_cgroup, wipe_directory
from coolcoding.sandbox.local.sandbox import LocalSandbox
from coolcoding.sandbox.local.session_pool import SessionPool, settle
from coolcoding.sandbox.local.spawnns import SpawnNamespace
from coolcoding.sandbox.npmcache import promote_from_sandbox, shared_content
from coolcoding.sandbox.pipcache import promote_from_sandbox as promote_pip_from_sandbox
from coolcoding.sandbox.pipcache import user_dir
from coolcoding.settings import Settings

log = logging.getLogger(__name__)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_SERVER = re.compile(r"^srv-[0-9a-f]{12}$")


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)
    os.chown(root, uid, gid, follow_symlinks=False)


class LocalRuntime(Runtime):
    connected_execs = True  # LocalSandbox.start_connected: host pipes as the exec's fds

    def __init__(
        self,
        settings: Settings,
        host: HostEnvironment | None = None,
        *,
        extra_ro_binds: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.host = host or check_environment(settings)
        # The pooled zygote (zygote.py): C once built and self-tested (czygote.py), else bash;
        # with "c", built first (a failure leaves nothing else started).
        self.zygotes = ZygoteChoice(settings.sandbox_zygote, self.state_dir / CACHE_DIR)
        if settings.sandbox_zygote == "c":
            try:
                self.zygotes.resolve()
            except ZygoteUnavailable as e:
                raise SandboxError(
                    "zygote_unavailable",
                    "Sandboxes are not available on this server.",
                    f"COOLCODING_SANDBOX_ZYGOTE=c: {e}; install a C compiler (cc) and libc "
                    "headers, or set COOLCODING_SANDBOX_ZYGOTE=auto or bash",
                ) from e
        self.instance_id = self.host.cgroups.instance
        become_subreaper()
        self.extra_ro_binds = dict(extra_ro_binds or {})
        self._sandboxes: dict[str, LocalSandbox] = {}
        self._starting = KeyedLock()  # per session: starts of different sessions overlap
        self._watcher: asyncio.Task[None] | None = None
        self._promoter: asyncio.Task[None] | None = None  # npm downloads into the shared store
        # Per sandbox: the pip cache files already handled (sandbox/pipcache.promote_fd).
        self._pip_seen: dict[str, set[tuple[int, int, int]]] = {}
        size = settings.sandbox_pool_size
        size = 2 * (os.cpu_count() or 1) if size < 0 else size
        self.pool = WarmPool(size, self._make_warm, self._destroy_ephemeral, self._abandon_warm)
        reuse_size = settings.sandbox_judge_reuse_size
        if reuse_size < 0:
            # twice the judge workers: a job ending finds its user's sandboxes still wiping
            reuse_size = 2 * (settings.exec_workers or 2 * (os.cpu_count() or 1))
        self.reuse = ReusePool(
            reuse_size if settings.sandbox_judge_reuse else 0,
            self._wipe_ephemeral,
            self._destroy_ephemeral,
            self._abandon_warm,
            settings.sandbox_judge_reuse_wipe_timeout_s,
        )
        self.session_pool = SessionPool(
            settings.sandbox_session_pool_size,
            self.state_dir,
            self._start_pooled,
            self._destroy_pooled,
            self._abandon_pooled,
        )
        self._live_ephemeral: set[str] = set()  # names cleanup_orphans must not touch
        self._jobs: set[str] = set()  # ephemeral sandboxes a job holds (the others: the pool's)
        self._removals: set[asyncio.Task[None]] = set()  # ephemeral directories being deleted
        self._etc_tag = etc_root_tag(self.instance_id)
        self._agent_package: str | None = None  # agent_package_copy, made at the first start
        self._agent_copy_name: str | None = None  # its name (cleanup_orphans keeps it)
        self.etc_root = make_etc_root(settings.sandbox_etc_root, self.state_dir, self._etc_tag)
        tmpfs = settings.sandbox_etc_root
        self.agents = AgentFiles(
            self.state_dir,
            tmpfs / f"cc-sock-{self._etc_tag}" if tmpfs.is_dir() else None,
        )
        self._released: set[str] = set()  # left running at shutdown, for the next process
        self._etc = EtcTemplates(self.etc_root / "templates", self.host.layout)
        self.images = (
            WorkspaceImages(
                self.state_dir / "workspace-images",
                settings.workspaces_dir,
                settings.max_workspace_items,
            )
            if settings.sandbox_disk_quota == "image"
            else None
        )
        self.spawn_ns = SpawnNamespace(None)
        if settings.sandbox_spawn_mount_ns:
            # what judge sandboxes' bwrap reads by path or by fd (bwrap.py, etcdir.py)
            needed = [*self.host.layout.ro_dirs, self.host.bwrap_path, str(self.state_dir),
                      str(settings.workspaces_dir), str(self.etc_root),
                      *self.extra_ro_binds]  # fmt: skip
            self.spawn_ns = SpawnNamespace.create(
                [os.path.realpath(p) for p in needed], hold=settings.sandbox_spawn_ns_test_hold
            )
        self.seccomp_program = seccomp.program() if settings.sandbox_seccomp else None
        if settings.sandbox_seccomp and self.seccomp_program is None:
            log.warning("no seccomp syscall table for this architecture: sandboxes run without one")

    @property
    def state_dir(self) -> Path:
        # Resolved once per data dir (a realpath is ~10 lstat calls; this is read several
        # times per judge job on the event loop, issue 10).
        data_dir = self.settings.data_dir
        cached = self.__dict__.get("_state_dir")
        if cached is None or cached[0] != data_dir:
            cached = self.__dict__["_state_dir"] = (
                data_dir,
                (data_dir / "sandbox-state").resolve(),
            )
        return cached[1]

    def _check_name(self, session_uuid: str) -> None:
        if not _NAME.match(session_uuid):
            raise SandboxError("bad_session", "Invalid session id.", repr(session_uuid))

    async def _make(
        self, spec: SandboxSpec, workspace: Path, etc_dir: Path, images: WorkspaceImages | None
    ) -> LocalSandbox:
        s = self.settings
        creds = credentials_for(spec.session_uuid, s.sandbox_uid_base, s.sandbox_uid_count)
        binds = {**self.extra_ro_binds, **spec.extra_ro_binds}
        # Files for /etc are copied into the generated /etc, not bound: a bind would show the
        # host path (e.g. the server's source tree) in the sandbox's /proc/self/mountinfo.
        copies = [(host, target) for host, target in binds.items() if target.startswith("/etc/")]
        binds = {host: target for host, target in binds.items() if not target.startswith("/etc/")}

        def prepare() -> None:
            workspace.parent.mkdir(mode=0o711, parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                workspace.mkdir(mode=0o700)
            if images is not None:
                images.mount(spec.session_uuid, workspace, spec.disk_bytes, creds.uid, creds.gid)
            st = os.stat(workspace, follow_symlinks=False)
            if creds.drop and (st.st_uid, st.st_gid) != (creds.uid, creds.gid):
                _chown_tree(workspace, creds.uid, creds.gid)  # new, or the uid range changed
            self._etc.write(
                etc_dir,
                uid=creds.uid,
                gid=creds.gid,
                network=spec.network,
                mount_points=binds.values(),
                copies=copies,
                recyclable=spec.session_uuid.startswith("eph-"),
            )

        # Not to_thread: a cancelled caller (e.g. a pool refill when its loop ends) must wait
        # for the thread, or its clean-up would race the directories the thread still creates.
        done = asyncio.get_running_loop().run_in_executor(None, prepare)
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await done
            raise
        sb = LocalSandbox(
            spec,
            host=self.host,
            creds=creds,
            workspace=workspace,
            etc_dir=etc_dir,
            cgroup_name=spec.session_uuid,
            tmp_bytes=s.sandbox_tmp_bytes,
            extra_ro_binds=binds,
            seccomp_program=self.seccomp_program,
            disk_image=images is not None,
            inline_write_bytes=s.sandbox_inline_write_bytes,
            inline_usage_entries=s.sandbox_inline_usage_entries,
        )
        sb.create_cgroup()
        if spec.network:
            try:
                await sb.start_network(
                    slirp_path=s.sandbox_slirp4netns_path,
                    allow=s.sandbox_network_allow,
                    timeout_s=s.sandbox_start_timeout_s,
                )
            except BaseException:
                await sb.stop()
                raise
        return sb

    async def start(self, spec: SandboxSpec, state: dict[str, Any] | None = None) -> Sandbox:
        self._check_name(spec.session_uuid)
        async with self._starting.hold(spec.session_uuid):
            sb = self._sandboxes.get(spec.session_uuid)
            if sb is not None and sb.spec == spec:
                return sb
            workspace = self.settings.workspaces_dir / spec.session_uuid
            if sb is not None:  # limits or network changed: apply to the running sandbox
                await sb.stop()
                if self.images is not None and sb.spec.disk_bytes != spec.disk_bytes:
                    await asyncio.to_thread(self.images.unmount, workspace)  # to resize it
            elif self.session_pool.is_unreserved(spec.session_uuid):
                raise SandboxError(
                    "bad_session",
                    "Invalid session id.",
                    f"{spec.session_uuid} is a pooled sandbox no session was given",
                )
            else:
                sb = await self.session_pool.take(spec)  # reserved for this new session
                if sb is None:
                    sb = await self._adopt(spec, state, workspace)
                    if sb is not None:
                        self._sandboxes[spec.session_uuid] = sb
                        return sb
            if sb is None or sb.stopped:
                sb = await self._start_new(spec)
            self._sandboxes[spec.session_uuid] = sb
            if (
                self._watcher is None
                and self.images is None
                and self.settings.sandbox_disk_check_interval_s > 0
            ):
                self._watcher = asyncio.get_running_loop().create_task(self._watch_disk())
            if (
                self._promoter is None
                and self.settings.package_cache_dir
                and self.settings.package_cache_promote_interval_s > 0
            ):
                self._promoter = asyncio.get_running_loop().create_task(self._promote_loop())
            return sb

    async def _start_new(self, spec: SandboxSpec) -> LocalSandbox:
        """A new sandbox for ``spec`` with its agent ready (a cold start, or the pool's)."""
        workspace = self.settings.workspaces_dir / spec.session_uuid
        sb = await self._make(spec, workspace, self.etc_root / spec.session_uuid, self.images)
        try:
            await self._start_agent(sb)
        except BaseException:
            await sb.stop()
            await asyncio.to_thread(shutil.rmtree, sb.etc_dir, True)
            raise
        return sb

    async def _start_pooled(self, spec: SandboxSpec) -> LocalSandbox:
        """A pooled sandbox: a new one whose agent has started the first terminal's shell
        (``pty.spare``), waited for until its processes settle (``SessionPool`` compares them
        at hand-out: a sandbox whose processes changed is not handed out)."""
        sb = await self._start_new(spec)
        try:
            async with asyncio.timeout(self.settings.agent_start_timeout_s):
                client = await sb.connect_agent()
                try:
                    await client.pty_spare(80, 24)
                finally:
                    await client.close()
                await settle(sb)
        except BaseException:
            await self._destroy_pooled(sb)
            raise
        return sb

    def keep_session_pool(self, template: SandboxSpec) -> None:
        self.session_pool.keep(template)

    def reserve_session_uuid(self, network: bool) -> str | None:
        return self.session_pool.reserve(network)

    async def unreserve_session_uuid(self, session_uuid: str, *, unused: bool = False) -> None:
        await self.session_pool.unreserve(session_uuid, unused=unused)

    async def _destroy_pooled(self, sb: LocalSandbox) -> None:
        """A pooled sandbox no session got: its processes, agent files, /etc and image."""
        name = sb.spec.session_uuid
        await sb.stop()
        await asyncio.to_thread(shutil.rmtree, sb.etc_dir, True)
        await asyncio.to_thread(self.agents.remove, name)
        await asyncio.to_thread(self._delete_workspace_files, name)

    def _abandon_pooled(self, sb: LocalSandbox) -> None:
        """The same without the (gone) event loop that watches its processes."""
        name = sb.spec.session_uuid
        sb.stopped = True
        if sb.agent is not None:
            sb.agent.forget()
            fd = getattr(sb.agent.process, "status_fd", None)
            if isinstance(fd, int):
                with contextlib.suppress(OSError):
                    os.close(fd)
        sb.cgroup.remove()
        shutil.rmtree(sb.etc_dir, ignore_errors=True)
        self.agents.remove(name)
        self._delete_workspace_files(name)

    def _delete_workspace_files(self, name: str) -> None:
        workspace = self.settings.workspaces_dir / name
        if self.images is not None:
            self.images.delete(name, workspace)
        else:
            shutil.rmtree(workspace, ignore_errors=True)

    async def _start_agent(self, sb: LocalSandbox) -> None:
        """The sandbox's first process: the agent, which outlives this server process."""
        uuid = sb.spec.session_uuid
        secret = await asyncio.to_thread(self.agents.new_secret, uuid)
        if self._agent_package is None:
            self._agent_package = await asyncio.to_thread(agent_package_copy, self.etc_root.parent)
        devnull = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        try:
            async with asyncio.timeout(self.settings.agent_start_timeout_s):
                proc = await start_agent(
                    sb,
                    self.agents.socket_dir(uuid),
                    secret,
                    limits=agent_limits(self.settings),
                    log_fd=devnull,  # the server's stderr may be gone before the agent
                    outlive_server=True,  # with its namespace and NAT (network.py)
                    package_dir=self._agent_package,
                )
        except TimeoutError as exc:
            raise SandboxError(
                "agent_timeout",
                "The sandbox did not start in time; try again.",
                f"the agent of {uuid} was not ready within {self.settings.agent_start_timeout_s}"
                " s (COOLCODING_AGENT_START_TIMEOUT_S)",
            ) from exc
        except OSError as exc:
            raise SandboxError("agent_start", "The sandbox failed to start.", repr(exc)) from exc
        finally:
            os.close(devnull)
        sb.agent = AgentHandle(
            proc.socket_path, secret, str(self.agents.secret_path(uuid)), proc.host_pid(), proc
        )

    async def reachable(self, session_uuid: str, state: Mapping[str, Any] | None) -> bool:
        if not _NAME.match(session_uuid) or not state or not isinstance(state.get("agent"), dict):
            return False
        secret = await asyncio.to_thread(self.agents.read_secret, session_uuid)
        if secret is None:
            return False
        return await agent_answers(
            self.agents.socket_path(session_uuid), secret, self.settings.agent_connect_timeout_s
        )

    async def connect(self, session_uuid: str, state: Mapping[str, Any] | None) -> Sandbox:
        self._check_name(session_uuid)
        loc = await asyncio.to_thread(
            locate_agent, session_uuid, state, self.settings.sandbox_etc_root
        )
        if loc is None:
            raise SandboxError(
                "agent_unreachable",
                "The sandbox is not reachable from this server; try again.",
                f"sandbox {session_uuid}: no usable agent address in its state",
            )

        async def connector() -> AgentClient:
            return await connect_agent(loc.socket_path, loc.secret)

        if not await agent_answers(
            loc.socket_path, loc.secret, self.settings.agent_connect_timeout_s
        ):
            raise SandboxError(
                "agent_unreachable",
                "The sandbox's agent does not answer; try again.",
                f"sandbox {session_uuid}: its agent at {loc.socket_path} does not answer",
            )
        return AgentSandbox(
            session_uuid,
            connector,
            exec_timeout_s=self.settings.agent_exec_timeout_s,
            disk_bytes=self.settings.max_workspace_bytes,
            pid=loc.pid,
        )

    async def _adopt(
        self, spec: SandboxSpec, state: Mapping[str, Any] | None, workspace: Path
    ) -> LocalSandbox | None:
        """The sandbox an earlier process of this server, or a dead replica with its own data
        dir on this host, left running, if its agent answers; ``None`` otherwise (the caller
        starts a new one: whatever is left in our own cgroup subtree is killed first)."""
        uuid = spec.session_uuid
        s = self.settings
        loc = await asyncio.to_thread(locate_agent, uuid, state, s.sandbox_etc_root)
        if loc is None or not await agent_answers(
            loc.socket_path, loc.secret, s.agent_connect_timeout_s
        ):
            await asyncio.to_thread(self.host.cgroups.group(uuid).remove)
            return None
        owner: str | None = None
        cgroup_name = uuid
        if loc.secret_file != str(self.agents.secret_path(uuid)):  # another server's
            found = (state or {}).get("server")
            ws = (state or {}).get("workspace")
            if not isinstance(found, str) or not _SERVER.match(found) or not isinstance(ws, str):
                return None
            if not is_clean_abs(ws) or Path(ws).name != uuid:
                return None
            owner, workspace, cgroup_name = found, Path(ws), f"../{found}/{uuid}"
        pid = loc.pid if loc.pid is not None and is_agent_of(loc.pid, uuid) else None
        creds = credentials_for(uuid, s.sandbox_uid_base, s.sandbox_uid_count)
        binds = {**self.extra_ro_binds, **spec.extra_ro_binds}
        copies = [(host, target) for host, target in binds.items() if target.startswith("/etc/")]
        binds = {host: target for host, target in binds.items() if not target.startswith("/etc/")}
        etc_dir = self.etc_root / uuid
        if owner is not None:  # its /etc moves here (a rename in the tmpfs keeps its bind)
            await asyncio.to_thread(
                claim_etc_dir, s.sandbox_etc_root, etc_root_tag(owner), uuid, etc_dir
            )
        if not etc_dir.exists():  # for the execs this process spawns (the agent has its own)
            await asyncio.to_thread(
                self._etc.write, etc_dir, uid=creds.uid, gid=creds.gid, network=spec.network,
                mount_points=binds.values(), copies=copies,
            )  # fmt: skip
        sb = LocalSandbox(
            spec, host=self.host, creds=creds, workspace=workspace, etc_dir=etc_dir,
            cgroup_name=cgroup_name, tmp_bytes=s.sandbox_tmp_bytes, extra_ro_binds=binds,
            seccomp_program=self.seccomp_program, disk_image=self.images is not None,
            inline_write_bytes=s.sandbox_inline_write_bytes,
            inline_usage_entries=s.sandbox_inline_usage_entries,
        )  # fmt: skip
        sb.owner = owner
        sb.agent = AgentHandle(loc.socket_path, loc.secret, loc.secret_file, pid)
        sb.adopted = True
        sb.bump_counter()
        if spec.network:
            try:
                await sb.adopt_network(
                    (state or {}).get("network"),
                    is_agent=lambda p: is_agent_of(p, uuid),
                    slirp_path=s.sandbox_slirp4netns_path,
                    timeout_s=s.sandbox_start_timeout_s,
                )
            except SandboxError as exc:
                # Never a sandbox without its own namespace: start a new one instead.
                log.warning("sandbox %s: its network cannot be found again (%s): restarting it",
                            uuid, exc.log_message)  # fmt: skip
                await asyncio.to_thread(self.host.cgroups.group(uuid).remove)
                return None
        self._released.discard(uuid)
        log.info("found sandbox %s running (agent pid %s, server %s): reattached", uuid, pid,
                 owner or self.instance_id)  # fmt: skip
        return sb

    async def release(self, session_uuid: str) -> bool:
        sb = self._sandboxes.get(session_uuid)
        if sb is None or sb.agent is None or sb.stopped:
            return False
        del self._sandboxes[session_uuid]
        sb.agent.forget()
        if sb.network is not None:
            sb.network.forget()  # its NAT runs on, found again through the agent
        self._released.add(session_uuid)
        return True

    async def stop(self, session_uuid: str) -> None:
        self._check_name(session_uuid)
        sb = self._sandboxes.pop(session_uuid, None)
        self._released.discard(session_uuid)
        workspace = self.settings.workspaces_dir / session_uuid
        if sb is not None:
            await self._promote_npm(sb)  # before its home (a tmpfs) is gone
            await self._promote_pip(sb)
            self._pip_seen.pop(session_uuid, None)
            await sb.stop()
            await asyncio.to_thread(shutil.rmtree, sb.etc_dir, True)
            workspace = sb.workspace
            if sb.owner is not None and isinstance(
                sb.agent, AgentHandle
            ):  # taken from a dead replica
                await asyncio.to_thread(forget_agent_files, sb.agent)
        else:  # e.g. started by a previous server process
            await asyncio.to_thread(self.host.cgroups.group(session_uuid).remove)
        await asyncio.to_thread(self.agents.remove, session_uuid)
        if self.images is not None:
            await asyncio.to_thread(self.images.unmount, workspace)

    async def delete_workspace(self, session_uuid: str) -> None:
        await self.stop(session_uuid)
        workspace = self.settings.workspaces_dir / session_uuid
        if self.images is not None:
            await asyncio.to_thread(self.images.delete, session_uuid, workspace)
        else:
            await asyncio.to_thread(shutil.rmtree, workspace, True)

    async def stored_workspaces(self) -> list[str]:
        def scan() -> list[str]:
            names = set(self.images.images()) if self.images is not None else set()
            root = self.settings.workspaces_dir
            if root.is_dir():
                names.update(e.name for e in os.scandir(root) if e.is_dir(follow_symlinks=False))
            return sorted(n for n in names if _is_uuid(n))

        # Not those running here: a pooled sandbox's uuid has no session yet.
        return [n for n in await asyncio.to_thread(scan) if n not in self._sandboxes]

    def poll(self, session_uuid: str) -> int | None:
        sb = self._sandboxes.get(session_uuid)
        return None if sb is not None and not sb.stopped else 0

    def get_state(self, session_uuid: str) -> dict[str, Any]:
        sb = self._sandboxes.get(session_uuid)
        return sb.state() if sb is not None else {}

    def workspace_dir(self, session_uuid: str) -> str:
        """Host path of a session's workspace (this runtime's own business, and tests'; not
        part of the ``Runtime`` interface: the services reach files through the agent)."""
        self._check_name(session_uuid)
        sb = self._sandboxes.get(session_uuid)
        if sb is not None:  # a sandbox taken over from another replica keeps its workspace
            return str(sb.workspace)
        return str(self.settings.workspaces_dir / session_uuid)

    def _ephemeral_spec(
        self, network: bool, memory_mb: int, pids: int, ro_binds: Mapping[str, str] | None = None
    ) -> SandboxSpec:
        return SandboxSpec(
            extra_ro_binds=dict(ro_binds or {}),
            session_uuid="eph-" + uuid.uuid4().hex,
            network=network,
            memory_mb=memory_mb,
            pids=pids,
            cpus=self.settings.sandbox_cpus,
            disk_bytes=self.settings.max_workspace_bytes,
        )

    def _ephemeral_root(self, name: str) -> Path:
        return self.state_dir / "ephemeral" / name

    async def _new_ephemeral(self, spec: SandboxSpec) -> LocalSandbox:
        root = self._ephemeral_root(spec.session_uuid)
        self._live_ephemeral.add(spec.session_uuid)
        try:
            sb = await self._make(spec, root / "workspace", self.etc_root / spec.session_uuid, None)
            if not spec.extra_ro_binds:  # a job's own binds may be anywhere: the host's
                sb.spawn_ns = self.spawn_ns
            if not spec.network and self.settings.sandbox_judge_keep_netns:
                sb.loopback_netns = await new_loopback_netns()
            return sb
        except BaseException:
            await asyncio.to_thread(self.host.cgroups.group(spec.session_uuid).remove)
            await asyncio.to_thread(shutil.rmtree, root, True)
            await asyncio.to_thread(self._etc.release, self.etc_root / spec.session_uuid)
            self._live_ephemeral.discard(spec.session_uuid)
            raise

    async def _make_warm(self) -> LocalSandbox:
        """A pooled sandbox (pool.py): limits are set again when a job claims it."""
        sb = await self._new_ephemeral(self._ephemeral_spec(False, 512, 64))
        try:
            await self._start_zygote(sb)
        except BaseException:
            await self._destroy_ephemeral(sb)
            raise
        return sb

    async def _destroy_ephemeral(self, sb: LocalSandbox) -> None:
        """Kill its processes, remove its cgroups; its directory is renamed away at once and
        deleted in the background (its /etc alone is ~400 entries: ~15 ms of unlinks)."""
        name = sb.spec.session_uuid
        await sb.stop()
        await asyncio.to_thread(self._etc.release, sb.etc_dir)
        trash = self.state_dir / "ephemeral-trash"
        try:
            trash.mkdir(mode=0o700, exist_ok=True)
            os.rename(self._ephemeral_root(name), trash / name)
        except FileNotFoundError:
            pass
        else:
            task = asyncio.get_running_loop().create_task(
                asyncio.to_thread(shutil.rmtree, trash / name, True)
            )
            self._removals.add(task)
            task.add_done_callback(self._removals.discard)
        self._live_ephemeral.discard(name)

    def _abandon_warm(self, sb: LocalSandbox) -> None:
        """Destroy a pooled sandbox without its (gone) event loop: see ``WarmPool``."""
        if sb.warm is not None:
            sb.warm.abandon()
            sb.warm = None
        sb.close_loopback_netns()
        sb.cgroup.remove()
        shutil.rmtree(self._ephemeral_root(sb.spec.session_uuid), ignore_errors=True)
        self._etc.release(sb.etc_dir)
        self._live_ephemeral.discard(sb.spec.session_uuid)

    def pool_names(self) -> set[str]:
        """Ephemeral sandboxes (cgroup and directory names) that belong to the warm pool (ready
        or being started, never used by a job) or to the reuse pool (being wiped, or wiped)."""
        return self._live_ephemeral - self._jobs

    async def _claim_warm(self, memory_mb: int, pids: int, owner: str = "") -> LocalSandbox | None:
        sb = await self.reuse.claim(owner) if owner else None
        if sb is None:
            sb = self.pool.claim()
        if sb is None:
            return None
        try:
            sb.spec = dataclasses.replace(sb.spec, memory_mb=memory_mb, pids=pids)
            sb.create_cgroup()  # the job's session limits (the exec's are set at release)
        except (OSError, SandboxError):
            log.warning("warm sandbox %s: cannot set the job's limits", sb.spec.session_uuid,
                        exc_info=True)  # fmt: skip
            await self._destroy_ephemeral(sb)
            return None  # the job takes the normal path
        return sb

    @asynccontextmanager
    async def _ephemeral(
        self,
        files: Mapping[str, bytes],
        network: bool,
        memory_mb: int,
        pids: int,
        executables: Collection[str],
        ro_binds: Mapping[str, str] | None,
        owner: str,
    ) -> AsyncIterator[Sandbox]:
        sb: LocalSandbox | None = None
        spec = self._ephemeral_spec(network, memory_mb, pids, ro_binds)
        # Reused (wiped) sandboxes: per owner, and like the pool's, without extra mounts.
        reuse = owner if owner and not network and not ro_binds and self.reuse.size > 0 else ""
        try:
            if not network and not ro_binds:  # pooled sandboxes have no extra mounts
                sb = await self._claim_warm(memory_mb, pids, reuse)
            if sb is None:
                self._jobs.add(spec.session_uuid)
                sb = await self._new_ephemeral(spec)
            self._jobs.add(sb.spec.session_uuid)
            if files:
                await sb.write_files(files, executables)
            yield sb
        finally:
            if sb is not None:
                if reuse and not sb.stopped:
                    self.reuse.put_back(reuse, sb)  # wiped in the background, or destroyed
                else:
                    await self._destroy_ephemeral(sb)
                self._jobs.discard(sb.spec.session_uuid)
            self._jobs.discard(spec.session_uuid)
            if not network:
                self.pool.refill()

    def ephemeral(
        self,
        files: Mapping[str, bytes],
        *,
        network: bool = False,
        memory_mb: int = 512,
        pids: int = 64,
        executables: Collection[str] = (),
        ro_binds: Mapping[str, str] | None = None,
        owner: str = "",
    ) -> contextlib.AbstractAsyncContextManager[Sandbox]:
        return self._ephemeral(files, network, memory_mb, pids, executables, ro_binds, owner)

    async def _wipe_ephemeral(self, sb: LocalSandbox) -> None:
        """Make a used judge sandbox fit for its owner's next job (reuse.py); raises if not."""
        await sb.quiesce()

        def wipe() -> None:
            clear_cgroup(sb.cgroup)
            wipe_directory(str(sb.workspace), sb.creds.uid, sb.creds.gid, chown=sb.creds.drop)

        if self._wipe_is_small(sb):
            wipe()  # a few files and no process: less work than the thread hop
        else:
            done = asyncio.get_running_loop().run_in_executor(None, wipe)
            try:
                await asyncio.shield(done)
            except asyncio.CancelledError:  # a timeout: the thread ends before the destroy
                with contextlib.suppress(Exception):
                    await done
                raise
        await self._start_zygote(sb)

    async def _start_zygote(self, sb: LocalSandbox) -> None:
        """The pooled zygote of ``sb``; with ``auto``, a C zygote that dies during the set-up
        (not a timeout) is followed by a bash one, and if that one starts, bash from then on."""
        timeout_s = self.settings.sandbox_start_timeout_s
        binary = await self.zygotes.get()
        try:
            await sb.start_zygote(timeout_s, binary)
        except TimeoutError:
            raise
        except OSError as e:
            if binary is None or self.zygotes.mode != "auto":
                raise
            await sb.start_zygote(timeout_s, None)
            self.zygotes.disable(binary, str(e))

    def _wipe_is_small(self, sb: LocalSandbox) -> bool:
        """Whether ``sb``'s wipe can run on the event loop: no process left in its cgroup (so
        the kill has nothing to wait for, and nothing can fork: every process is gone) and at
        most ``sandbox_inline_usage_entries`` entries in its workspace (the bounded walk stops
        past them)."""
        entries = self.settings.sandbox_inline_usage_entries
        if entries <= 0 or sb.cgroup.all_pids():
            return False
        return disk_usage_bytes_upto(str(sb.workspace), entries) is not None

    async def shutdown(self) -> None:
        await self.reuse.close()
        await self.pool.close()
        await self.session_pool.close()
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        if self._promoter is not None:
            self._promoter.cancel()
            self._promoter = None
        for session_uuid in list(self._sandboxes):
            await self.stop(session_uuid)
        loop = asyncio.get_running_loop()
        removals = [t for t in self._removals if t.get_loop() is loop]
        if removals:
            await asyncio.gather(*removals, return_exceptions=True)
        # A server with its own cgroup parent (tests, benchmarks) leaves nothing behind, but
        # the sandboxes released to outlive it (their /etc dirs stay too).
        await self.cleanup_orphans(keep=self._released)
        await asyncio.to_thread(self.host.cgroups.remove_parent)
        self.spawn_ns.close()
        self.zygotes.close()
        if not self._released:
            await asyncio.to_thread(shutil.rmtree, self.etc_root, True)
            # The agents' socket root (tmpfs), empty once no sandbox is left running: made
            # again by the next start of this identity (AgentFiles creates it).
            with contextlib.suppress(OSError):
                await asyncio.to_thread(os.rmdir, self.agents.sockets)

    async def reclaim_dead(self, keep: Collection[str] = ()) -> int:
        """Remove everything of this server's identity but ``keep`` (sandboxes a live replica
        took over): for a runtime made only to clean up after a dead process of another mode
        (modeswitch.py), never started. Returns how many sandboxes were removed."""
        self._released.update(keep)
        count = await self.cleanup_orphans()
        await self.shutdown()  # the kept ones' /etc dirs stay in its /etc root, moved there
        return count

    async def cleanup_orphans(self, keep: Collection[str] = ()) -> int:
        keep = {*keep, *self._released, *self.session_pool.live}
        count = 0
        await asyncio.to_thread(
            reclaim_dead_etc_roots,
            self.settings.sandbox_etc_root, self._etc_tag, keep, self.etc_root,
        )  # fmt: skip
        if self._agent_copy_name is None:
            self._agent_copy_name = await asyncio.to_thread(agent_copy_name)
        # Other code versions' agent copies that nothing uses any more (agent_launch.py)
        await asyncio.to_thread(reclaim_agent_copies, self.etc_root.parent, self._agent_copy_name)
        for name in self.host.cgroups.leftovers():
            if name in self._sandboxes or name in self._live_ephemeral or name in keep:
                continue
            # Under the start's own lock, checked again: a start in progress makes its cgroup
            # and /etc before the sandbox is listed, and is not an orphan.
            async with self._starting.hold(name):
                if name in self._sandboxes or name in self._live_ephemeral or name in keep:
                    continue
                removed = await asyncio.to_thread(self.host.cgroups.group(name).remove)
            count += 1
            if not removed:
                log.warning("orphan sandbox cgroup %s could not be removed", name)
        if self.images is not None:  # only mounts under this server's workspaces dir
            for mountpoint in await asyncio.to_thread(self.images.mounted):
                async with self._starting.hold(mountpoint.name):  # not one a start mounts now
                    if mountpoint.name not in self._sandboxes and mountpoint.name not in keep:
                        await asyncio.to_thread(self.images.unmount, mountpoint)
                        count += 1
        eph = self.state_dir / "ephemeral"
        if eph.is_dir():
            for entry in os.listdir(eph):
                if entry not in self._live_ephemeral:
                    await asyncio.to_thread(shutil.rmtree, eph / entry, True)
        await asyncio.to_thread(shutil.rmtree, self.state_dir / "ephemeral-trash", True)
        for name in await asyncio.to_thread(self.agents.names):
            if name not in self._sandboxes and name not in keep:
                await asyncio.to_thread(self.agents.remove, name)
        for name in await asyncio.to_thread(self.session_pool.leftovers):
            # a dead process's pooled sandboxes: never given to a session, nothing to keep
            await asyncio.to_thread(self.host.cgroups.group(name).remove)
            await asyncio.to_thread(self.agents.remove, name)
            await asyncio.to_thread(self._delete_workspace_files, name)
            await asyncio.to_thread(shutil.rmtree, self.etc_root / name, True)
            self.session_pool.unmark(name)
            count += 1
        for entry in os.listdir(self.etc_root) if self.etc_root.is_dir() else ():
            if entry in {"templates", OWNER, *self._sandboxes, *self._live_ephemeral, *keep}:
                continue
            async with self._starting.hold(entry):  # as above: not a start's in progress
                if entry not in {*self._sandboxes, *self._live_ephemeral, *keep}:
                    await asyncio.to_thread(shutil.rmtree, self.etc_root / entry, True)
        templates = self.etc_root / "templates"
        if templates.is_dir():
            for entry in set(os.listdir(templates)) - self._etc.in_use():
                await asyncio.to_thread(shutil.rmtree, templates / entry, True)
        return count

    async def _promote_npm(self, sb: LocalSandbox) -> None:
        """Copy the npm tarballs ``sb`` downloaded into the shared store, each verified on
        this side (sandbox/npmcache.py); never fails the caller."""
        store = shared_content(self.settings.package_cache_dir)
        agent = sb.agent
        pid = agent.pid if isinstance(agent, AgentHandle) else None
        if store is None or pid is None or sb.stopped:
            return
        uuid = sb.spec.session_uuid
        try:
            result = await asyncio.to_thread(
                promote_from_sandbox,
                pid,
                bwrap.SANDBOX_HOME,
                store,
                still_ours=lambda: is_agent_of(pid, uuid),
                max_blob_bytes=self.settings.package_cache_max_blob_bytes,
                max_total_bytes=self.settings.package_cache_max_promote_bytes,
            )
        except OSError:
            log.warning("promoting the npm cache of %s failed", uuid, exc_info=True)
            return
        if result.promoted or result.rejected:
            log.info("npm cache of %s: %d promoted (%d bytes), %d rejected", uuid,
                     result.promoted, result.bytes, result.rejected)  # fmt: skip

    async def _promote_pip(self, sb: LocalSandbox) -> None:
        """Copy the wheels ``sb``'s pip downloaded or built into its owner's own wheelhouse,
        each verified on this side (sandbox/pipcache.py); never fails the caller."""
        s = self.settings
        dest = user_dir(s.package_cache_dir, sb.spec.package_user)
        agent = sb.agent
        pid = agent.pid if isinstance(agent, AgentHandle) else None
        if dest is None or s.package_cache_pip_user_quota_bytes <= 0 or pid is None:
            return
        if sb.stopped:
            return
        uuid = sb.spec.session_uuid
        try:
            result = await asyncio.to_thread(
                promote_pip_from_sandbox,
                pid,
                bwrap.SANDBOX_HOME,
                dest,
                still_ours=lambda: is_agent_of(pid, uuid),
                max_blob_bytes=s.package_cache_max_blob_bytes,
                max_total_bytes=s.package_cache_max_promote_bytes,
                quota_bytes=s.package_cache_pip_user_quota_bytes,
                seen=self._pip_seen.setdefault(uuid, set()),
            )
        except OSError:
            log.warning("promoting the pip cache of %s failed", uuid, exc_info=True)
            return
        if result.promoted or result.rejected:
            log.info("pip cache of %s: %d promoted (%d bytes), %d rejected", uuid,
                     result.promoted, result.bytes, result.rejected)  # fmt: skip

    async def _promote_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.package_cache_promote_interval_s)
            for sb in list(self._sandboxes.values()):
                await self._promote_npm(sb)
                await self._promote_pip(sb)

    async def _watch_disk(self) -> None:
        interval = self.settings.sandbox_disk_check_interval_s
        while True:
            await asyncio.sleep(interval)
            for sb in list(self._sandboxes.values()):
                if sb.agent is None:
                    continue
                try:
                    used = (await sb.disk_usage()).used_bytes
                except OSError:
                    continue
                if used > sb.spec.disk_bytes:
                    mib = sb.spec.disk_bytes // (1024 * 1024)
                    log.info("sandbox %s over its disk quota: %d bytes", sb.spec.session_uuid, used)
                    for term in list(sb.terminals):
                        term.notice(
                            f"stopped: the workspace uses {used // (1024 * 1024)} MiB, more than "
                            f"its {mib} MiB quota. Delete files, then open a new terminal."
                        )
                    await self._close_agent_terminals(sb)  # hang-up, then kill

    @staticmethod
    async def _close_agent_terminals(sb: LocalSandbox) -> None:
        try:
            async with asyncio.timeout(10):
                client = await sb.connect_agent()
                try:
                    for t in await client.pty_list():
                        await client.pty_close(t["terminal_id"])
                finally:
                    await client.close()
        except (OSError, TimeoutError, AgentError, AgentConnectionLost):
            log.warning("sandbox %s: closing its terminals failed", sb.spec.session_uuid,
                        exc_info=True)  # fmt: skip


def _is_uuid(name: str) -> bool:
    try:
        return str(uuid.UUID(name)) == name
    except ValueError:
        return False
