"""The small capabilities the parts of a local sandbox hand each other, as Protocols.

An exec run and the zygote need a sandbox only to make a leaf cgroup and spawn into it; the
sandbox needs its agent only to connect, watch and stop it. Naming those capabilities here (and
not the classes that implement them) keeps ``sandbox.py`` and the modules it uses free of
import cycles.
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from coolcoding.agent.client import AgentClient
    from coolcoding.sandbox.base import SandboxSpec
    from coolcoding.sandbox.local.cgroups import Cgroup, CgroupLimits
    from coolcoding.sandbox.local.process import SandboxProcess


class SpawnHost(Protocol):
    """What an exec run and the zygote use of their sandbox (``LocalSandbox``)."""

    @property
    def spec(self) -> SandboxSpec: ...

    def new_leaf(self, kind: str, limits: CgroupLimits) -> Cgroup: ...

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
    ) -> SandboxProcess: ...

    async def over_quota(self) -> bool: ...

    def track_cleanup(self, coro: Coroutine[Any, Any, None]) -> None: ...


class ZygoteBinary(Protocol):
    """The C zygote as a spawn uses it (``czygote.CZygote``): an fd to pass, its argv."""

    @property
    def fd(self) -> int: ...

    def command(self, release_fd: int, control_fd: int, request_fd: int) -> list[str]: ...


class Stoppable(Protocol):
    async def stop(self) -> None: ...


class SandboxAgent(Protocol):
    """A session sandbox's agent as its sandbox uses it (``agents.AgentHandle``)."""

    @property
    def pid(self) -> int | None: ...

    @property
    def process(self) -> Stoppable | None: ...

    async def connect(self) -> AgentClient: ...

    def state(self) -> dict[str, Any]: ...

    async def wait_ended(self) -> str: ...

    def forget(self) -> None: ...
