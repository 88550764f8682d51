"""Where a local session sandbox's agent is found again: its socket, its secret, its pid.

A session's agent outlives the server process that started it. What a later process of the same
server (same data dir) needs to reach it lives under the state dir: the socket in
``agent-sockets/<session>/`` (owned by the sandbox uid, mode 0700) and the secret in
``agent-secrets/<session>`` (root only, mode 0600, in a 0700 directory). The DB holds only those
paths and the agent's pid (``sessions.sandbox_state``), never the secret; the paths are derived
from the session id again on use, so a tampered DB row cannot point the server elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coolcoding.agent.client import AgentClient, AgentConnectionLost, AgentError
from coolcoding.agent.protocol import ProtocolError
from coolcoding.sandbox.local.agent_launch import SOCKET_NAME, AgentProcess
from coolcoding.sandbox.local.loopfd import LoopFd

SECRET_BYTES = 32


class AgentFiles:
    """The socket directories and secret files of one server's session agents."""

    def __init__(self, state_dir: Path, sockets: Path | None = None) -> None:
        # ``sockets``: a tmpfs dir named by the server (runtime.py), because the socket dir is
        # bound into the sandbox and a bind's source path shows in its /proc/self/mountinfo:
        # under the data dir it would name the host's data dir.
        self.sockets = sockets or state_dir / "agent-sockets"
        self.secrets = state_dir / "agent-secrets"

    def prepare(self) -> None:
        # Socket dirs: root's parent, searchable (bwrap binds it as the sandbox uid);
        # secrets: root only.
        for path, mode in ((self.sockets, 0o711), (self.secrets, 0o700)):
            path.mkdir(mode=mode, parents=True, exist_ok=True)
            os.chmod(path, mode)

    def socket_dir(self, session_uuid: str) -> Path:
        return self.sockets / session_uuid

    def socket_path(self, session_uuid: str) -> str:
        return str(self.socket_dir(session_uuid) / SOCKET_NAME)

    def secret_path(self, session_uuid: str) -> Path:
        return self.secrets / session_uuid

    def new_secret(self, session_uuid: str) -> bytes:
        """A fresh secret for a new agent, stored root-only (replacing an old agent's)."""
        self.prepare()
        secret = secrets.token_bytes(SECRET_BYTES)
        path = self.secret_path(session_uuid)
        path.unlink(missing_ok=True)
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        try:
            os.write(fd, secret)
        finally:
            os.close(fd)
        return secret

    def read_secret(self, session_uuid: str) -> bytes | None:
        try:
            fd = os.open(self.secret_path(session_uuid), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            data = os.read(fd, SECRET_BYTES + 1)
        finally:
            os.close(fd)
        return data if len(data) == SECRET_BYTES else None

    def remove(self, session_uuid: str) -> None:
        self.secret_path(session_uuid).unlink(missing_ok=True)
        shutil.rmtree(self.socket_dir(session_uuid), ignore_errors=True)

    def names(self) -> set[str]:
        found: set[str] = set()
        for d in (self.sockets, self.secrets):
            with contextlib.suppress(OSError):
                found.update(os.listdir(d))
        return found


SUN_PATH_MAX = 107  # sockaddr_un.sun_path, less the terminating NUL


async def connect_agent(socket_path: str, secret: bytes) -> AgentClient:
    """Connect to the agent at ``socket_path``, however deep the data dir: a path too long for
    ``sockaddr_un`` is reached through an O_PATH fd of its directory (``/proc/self/fd/N/...``)."""
    if len(socket_path.encode()) <= SUN_PATH_MAX:
        return await AgentClient.connect(socket_path, secret)
    head, _, name = socket_path.rpartition("/")
    dirfd = os.open(head, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return await AgentClient.connect(f"/proc/self/fd/{dirfd}/{name}", secret)
    finally:
        os.close(dirfd)


async def agent_answers(socket_path: str, secret: bytes, timeout_s: float) -> bool:
    """Whether an agent holding ``secret`` answers a ping on ``socket_path`` in time."""
    try:
        async with asyncio.timeout(timeout_s):
            client = await connect_agent(socket_path, secret)
            try:
                return await client.ping()
            finally:
                await client.close()
    except (OSError, TimeoutError, AgentError, AgentConnectionLost, ProtocolError, ValueError):
        return False


def is_agent_of(pid: int, session_uuid: str) -> bool:
    """Whether host ``pid`` is a ``coolcoding.agent`` in the cgroup of ``session_uuid``."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        cgroups = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False
    return (
        bool(argv)
        and argv[0].endswith(b"python3")
        and b"coolcoding.agent" in argv
        and f"/{session_uuid}/" in cgroups
    )


@dataclass
class AgentHandle:
    """A session sandbox's agent as this server process knows it (started here, or adopted)."""

    socket_path: str
    secret: bytes
    secret_file: str
    pid: int | None  # on the host; None if it could not be found
    process: AgentProcess | None = None  # only when this process started it
    _ended: asyncio.Future[str] | None = field(default=None, repr=False)
    _pidfd: LoopFd | None = field(default=None, repr=False)

    async def connect(self) -> AgentClient:
        return await connect_agent(self.socket_path, self.secret)

    def state(self) -> dict[str, Any]:
        return {"socket": self.socket_path, "secret_file": self.secret_file, "pid": self.pid}

    async def wait_ended(self) -> str:
        """Returns (with a message) once the agent process is gone."""
        if self.pid is None:
            await asyncio.Future()  # cannot watch it: the terminal connections will fail
        if self._ended is None:
            ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self._ended = ended
            try:
                self._pidfd = LoopFd(os.pidfd_open(self.pid))  # type: ignore[arg-type]
            except ProcessLookupError:
                ended.set_result("The sandbox's agent is not running.")
            else:
                pidfd = self._pidfd

                def on_exit() -> None:
                    pidfd.close()
                    if not ended.done():
                        ended.set_result(
                            "The sandbox's agent stopped (its terminals are gone); "
                            "start the sandbox again."
                        )

                pidfd.watch_readable(on_exit)
        return await asyncio.shield(self._ended)

    def forget(self) -> None:
        """Stop watching the agent (this process lets it run without it)."""
        if self._pidfd is not None:
            self._pidfd.close()


@dataclass(frozen=True)
class AgentLocation:
    """Where a running sandbox's agent is, read from its ``sandbox_state`` (any server's)."""

    socket_path: str
    secret: bytes
    secret_file: str
    pid: int | None


def is_clean_abs(path: str) -> bool:
    return path.startswith("/") and os.path.normpath(path) == path and "\0" not in path


def locate_agent(
    session_uuid: str, state: Mapping[str, Any] | None, sockets_tmpfs: Path
) -> AgentLocation | None:
    """The agent ``state`` names, if its paths have the shapes this runtime makes and its secret
    is a root-only file of the right size; ``None`` otherwise.

    Another server process on this host (a replica with its own data dir) started it: the DB
    row is the only place its paths are written. A tampered row can therefore only name an
    ``agent.sock`` in a ``<session>`` directory of a socket root (``<tmpfs>/cc-sock-<tag>`` or
    ``.../sandbox-state/agent-sockets``) and a secret ``.../sandbox-state/agent-secrets/<session>``
    owned by this uid with no group/other access; and the client checks the agent's proof of the
    secret (protocol.py), so a planted socket learns nothing it can use."""
    agent = (state or {}).get("agent")
    if not isinstance(agent, dict):
        return None
    sock, secret_file, pid = agent.get("socket"), agent.get("secret_file"), agent.get("pid")
    if not isinstance(sock, str) or not isinstance(secret_file, str):
        return None
    if not is_clean_abs(sock) or not is_clean_abs(secret_file):
        return None
    sp, fp = Path(sock), Path(secret_file)
    sock_root = sp.parent.parent
    in_tmpfs = sock_root.parent == sockets_tmpfs and re.fullmatch(r"cc-sock-[0-9a-f]{8}",
                                                                   sock_root.name)  # fmt: skip
    in_state = sock_root.name == "agent-sockets" and sock_root.parent.name == "sandbox-state"
    if sp.name != SOCKET_NAME or sp.parent.name != session_uuid or not (in_tmpfs or in_state):
        return None
    if fp.name != session_uuid or fp.parent.name != "agent-secrets":
        return None
    if fp.parent.parent.name != "sandbox-state":
        return None
    try:
        fd = os.open(fp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
            return None
        data = os.read(fd, SECRET_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) != SECRET_BYTES:
        return None
    return AgentLocation(sock, data, secret_file, pid if isinstance(pid, int) else None)


def forget_agent_files(agent: AgentHandle) -> None:
    """Remove a stopped agent's socket dir and secret file where its state put them (a sandbox
    taken over from another replica: they are in that replica's dirs, validated by
    ``locate_agent``)."""
    shutil.rmtree(Path(agent.socket_path).parent, ignore_errors=True)
    Path(agent.secret_file).unlink(missing_ok=True)
