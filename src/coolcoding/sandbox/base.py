"""The sandbox runtime interface. One interface, several implementations (local, kubernetes).

The API and services never ask which runtime they have. Contracts are in the docstrings;
callers enforce timeouts (JupyterHub's rule): a runtime method may take as long as it takes.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from coolcoding.agent.client import AgentClient

# Runtimes raise the domain's sandbox error (one error vocabulary, mapped in api/errors.py).
from coolcoding.errors import SandboxError as SandboxError

SandboxStatus = Literal["stopped", "starting", "running", "error"]


@dataclass(frozen=True)
class SandboxSpec:
    """What a runtime needs to know to start a session's sandbox."""

    session_uuid: str
    network: bool = False
    memory_mb: int = 512
    pids: int = 256
    cpus: float = 1.0
    disk_bytes: int = 200 * 1024 * 1024
    env: Mapping[str, str] = field(default_factory=dict)
    # Host file -> sandbox path, mounted read-only (e.g. the terminal's shell-integration script
    # at /etc/profile.d/coolcoding.sh, which login shells source). Runtimes without host files
    # (kubernetes) ship them in the image instead.
    extra_ro_binds: Mapping[str, str] = field(default_factory=dict)
    # The session owner's user id: the host promotes the sandbox's pip downloads into that
    # user's wheelhouse (sandbox/pipcache.py); "" = none. Not seen inside the sandbox.
    package_user: str = ""


@dataclass(frozen=True)
class ExecLimits:
    """Limits for one ``exec``. ``None`` means: the sandbox's own limit applies."""

    cpu_s: float | None = None
    wall_s: float | None = None
    memory_mb: int | None = None
    pids: int | None = None
    output_bytes: int | None = None
    file_size_bytes: int | None = None


@dataclass(frozen=True)
class DiskUsage:
    """A workspace's disk: bytes in use, and how many it may hold in all."""

    used_bytes: int
    limit_bytes: int


@dataclass
class ExecResult:
    """What happened, as measured by the kernel (cgroup accounting, rusage)."""

    exit_code: int | None  # None when killed by a signal
    signal: int | None
    stdout: bytes
    stderr: bytes
    wall_ms: float
    cpu_ms: float
    memory_kb: int  # peak
    # Which limit ended the process, if any:
    # "cpu" | "wall" | "memory" | "pids" | "output" | "disk" | None
    limit_hit: str | None = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False


class Terminal(abc.ABC):
    """A PTY running a shell in a sandbox. Blocking I/O never runs on the event loop."""

    @abc.abstractmethod
    async def read(self) -> bytes:
        """Next chunk of output; ``b""`` once the shell has exited and all output was read."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Send keystrokes/bytes to the shell."""

    @abc.abstractmethod
    async def resize(self, cols: int, rows: int) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Kill the shell and its process group; idempotent."""

    @abc.abstractmethod
    def poll(self) -> int | None:
        """``None`` while the shell runs, its exit status otherwise."""


class Sandbox(abc.ABC):
    """A started sandbox of one session."""

    workspace_path: str  # where the workspace is, inside the sandbox ("/workspace")
    # True when ``Runtime.start`` found this sandbox running (started by an earlier server
    # process) instead of starting it: its files may be newer than the DB's.
    adopted: bool = False

    async def connect_agent(self) -> AgentClient:
        """A new authenticated connection to the sandbox's agent (its terminals live there)."""
        raise SandboxError("no_agent", "This sandbox has no terminals.")

    async def wait_ended(self) -> str:
        """Returns, with a message for the user, when the sandbox's agent is gone."""
        await asyncio.Future()
        raise AssertionError("unreachable")

    @abc.abstractmethod
    async def open_terminal(
        self, cols: int, rows: int, env: Mapping[str, str] | None = None
    ) -> Terminal:
        """Start an interactive shell on a new PTY in the sandbox."""

    @abc.abstractmethod
    async def exec(
        self,
        argv: list[str],
        *,
        stdin: bytes = b"",
        limits: ExecLimits | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult:
        """Run ``argv`` to completion in the sandbox, enforcing ``limits``; never raises for the
        program's own failures (they are in the result), only for the sandbox's."""

    @abc.abstractmethod
    def exec_stream(
        self,
        argv: list[str],
        *,
        stdin: bytes = b"",
        limits: ExecLimits | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> AbstractAsyncContextManager[ExecStream]:
        """Like ``exec`` but yields output chunks as they come (for the Run button)."""

    async def start_connected(
        self,
        argv: list[str],
        *,
        stdin_fd: int,
        stdout_fd: int,
        limits: ExecLimits | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecStream:
        """Start ``argv`` with two host fds (pipes) as its stdin and stdout, which are not
        captured (``result().stdout`` is empty): two programs connected to each other, e.g. an
        interactive problem's interactor and submission. The fds are the caller's: once this
        returns the program holds its own copies and the caller closes its. Only runtimes whose
        ``connected_execs`` is true have it."""
        raise SandboxError(
            "interactive_unsupported",
            "This server's sandbox runtime cannot connect two programs (interactive problems).",
        )

    @abc.abstractmethod
    async def write_files(self, files: Mapping[str, bytes | None]) -> None:
        """Write (bytes) or delete (None) workspace-relative paths; creates parent folders.
        An empty-directory entry is written as a path ending in '/' with value b""."""

    @abc.abstractmethod
    async def read_file(self, path: str) -> bytes:
        """Read one workspace-relative file; never follows a symlink out of the workspace."""

    @abc.abstractmethod
    async def disk_usage(self) -> DiskUsage:
        """The workspace's disk usage and limit (for the API's status)."""


class ExecStream(abc.ABC):
    """A running exec: stream its output, then get the result."""

    @abc.abstractmethod
    def chunks(self) -> AsyncIterator[tuple[Literal["stdout", "stderr"], bytes]]: ...

    @abc.abstractmethod
    async def result(self) -> ExecResult: ...

    @abc.abstractmethod
    async def kill(self) -> None: ...


class Runtime(abc.ABC):
    """Starts, finds and stops sandboxes. Methods are idempotent."""

    # Who owns what this runtime creates (the local runtime: this server's id, see
    # local/identity.py); stored with a session's sandbox state so that another server's
    # start-up leaves that session alone.
    instance_id: str = ""
    # Whether its sandboxes have ``Sandbox.start_connected`` (interactive problems).
    connected_execs: bool = False

    def keep_session_pool(self, template: SandboxSpec) -> None:
        """Keep sandboxes of new sessions pre-started with this spec (its uuid is ignored), if
        this runtime has a session pool; a no-op otherwise."""
        return None

    def reserve_session_uuid(self, network: bool) -> str | None:
        """The uuid of a pre-started, never-used sandbox for a new session with this spec, now
        reserved for it (``start`` with that uuid binds it), or ``None`` (no pool, empty pool:
        the session gets a fresh uuid and a cold start)."""
        return None

    async def unreserve_session_uuid(self, session_uuid: str, *, unused: bool = False) -> None:
        """Drop a reservation nobody will start. ``unused``: no session was ever created with
        that uuid (its sandbox may serve another new session); otherwise it is destroyed."""
        return None

    @abc.abstractmethod
    async def start(self, spec: SandboxSpec, state: dict[str, Any] | None = None) -> Sandbox:
        """Start (or find again, from ``state``) the sandbox of ``spec.session_uuid``."""

    @abc.abstractmethod
    async def stop(self, session_uuid: str) -> None:
        """Stop the sandbox and every process in it; keep its workspace files."""

    @abc.abstractmethod
    def poll(self, session_uuid: str) -> int | None:
        """``None`` while the sandbox runs, an exit status (0 = stopped cleanly) otherwise."""

    @abc.abstractmethod
    def get_state(self, session_uuid: str) -> dict[str, Any]:
        """Opaque JSON state to store in the DB (sessions.sandbox_state)."""

    @abc.abstractmethod
    async def delete_workspace(self, session_uuid: str) -> None:
        """Stop the sandbox and delete its workspace storage for good (the session was deleted).
        The services never see where a workspace is stored: files, changes and deletion all go
        through the runtime and the sandbox's agent."""

    async def stored_workspaces(self) -> list[str]:
        """Session uuids whose workspace storage this runtime keeps (running or not); the
        services delete those of sessions that no longer exist."""
        return []

    @abc.abstractmethod
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
    ) -> AbstractAsyncContextManager[Sandbox]:
        """A throw-away sandbox holding ``files`` (judge jobs); everything is removed on exit.
        ``executables`` (paths of ``files``) are written with mode 0755 (a cached binary runs
        without a ``chmod`` exec first, so the pooled process runs the program itself).
        ``ro_binds``: host directories mounted read-only (host path -> sandbox path), e.g. the
        job's dependency cache; a runtime that cannot mount host paths refuses them.
        ``owner`` (e.g. ``user:<id>``): whose job it is; a runtime may then run the job in a
        sandbox an earlier job of the same owner used, wiped (local runtime, reuse.py)."""

    @abc.abstractmethod
    async def shutdown(self) -> None:
        """Stop every sandbox (server shutdown)."""

    @abc.abstractmethod
    async def cleanup_orphans(self, keep: Collection[str] = ()) -> int:
        """Remove leftovers of a previous server process (processes, cgroups); returns how many.
        ``keep``: sessions whose sandboxes are alive and will be found again (``start``)."""

    async def reachable(self, session_uuid: str, state: Mapping[str, Any] | None) -> bool:
        """Whether the sandbox ``state`` describes is running and its agent answers (a sandbox
        an earlier server process left running, which ``start`` then finds again)."""
        return False

    async def connect(self, session_uuid: str, state: Mapping[str, Any] | None) -> Sandbox:
        """A handle on the running sandbox ``state`` describes (another replica runs it), that
        reaches it through its agent only: nothing is started, owned or adopted, and dropping
        the handle leaves the sandbox as it was. Its terminals and execs are the agent's.
        Raises ``SandboxError`` when the agent cannot be reached from this process."""
        raise SandboxError(
            "agent_unreachable",
            "The sandbox runs on another server, which this one cannot reach.",
            f"{type(self).__name__} cannot connect to sandboxes it did not start",
        )

    async def release(self, session_uuid: str) -> bool:
        """Forget a running sandbox without stopping it (server shutdown: it outlives this
        process). False when it cannot outlive this process; the caller then stops it."""
        return False
