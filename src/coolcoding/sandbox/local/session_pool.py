"""The session pool: sandboxes of *new* sessions, started before anyone asks for them.

A local sandbox's identity is its session uuid: its uid (``credentials_for``), cgroup, disk image,
/etc, agent socket and secret are all keyed by it, and a running process cannot change its uid.
So the pool does not bind a generic sandbox to a session: it starts each sandbox under a fresh
uuid4 of its own choosing, and a new session is *created with that uuid*
(``Runtime.reserve_session_uuid``). Its first ``start`` then finds the reserved sandbox and takes
it (``take``): start-to-prompt is a bind plus a terminal.

What a session can get, and what it can never get:
- only a sandbox that was reserved for it (a uuid sitting unreserved in the pool cannot be
  started: nobody's session has it);
- only an untouched one: the processes in its cgroup are those present when it became ready
  and its workspace lists what it listed then (``Pristine``); otherwise it is destroyed and the
  session starts cold;
- only one started with exactly its spec (limits, quota, network off, binds): any difference
  (a setting changed since, a network-enabled session) destroys it and the session starts cold;
- a reserved sandbox not started within ``RESERVE_TTL_S`` (its session's creation failed in a
  way that skipped ``unreserve``) is destroyed.
Markers (``<state>/session-pool/<uuid>``) name pooled sandboxes on disk, so that a process that
dies with a full pool lets the next one delete their never-used images (``cleanup_orphans``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coolcoding.sandbox.base import SandboxSpec
from coolcoding.sandbox.local.pool import WarmPool
from coolcoding.sandbox.local.sandbox import LocalSandbox

log = logging.getLogger(__name__)
RESERVE_TTL_S = 120.0  # from reserve (session creation) to start (same request)
REFILL_DELAY_S = 1.0  # after a reservation: the new session's start does not compete with it


@dataclass(frozen=True)
class Pristine:
    """What an untouched pooled sandbox looks like: its processes and its workspace listing."""

    pids: tuple[int, ...]
    listing: tuple[str, ...]


def _listing(workspace: Path) -> tuple[str, ...]:
    return tuple(sorted(os.listdir(workspace)))


def look(sb: LocalSandbox) -> Pristine | None:
    """The sandbox's processes and workspace now (``None`` when they cannot be read)."""
    try:
        return Pristine(tuple(sb.cgroup.all_pids()), _listing(sb.workspace))
    except OSError:
        return None


async def settle(sb: LocalSandbox, quiet_s: float = 0.1, timeout_s: float = 5.0) -> None:
    """Until the sandbox's processes stay the same for ``quiet_s`` (a login shell's start-up
    runs a few short programs), at most ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last = await asyncio.to_thread(sb.cgroup.all_pids)
    while loop.time() < deadline:
        await asyncio.sleep(quiet_s)
        now = await asyncio.to_thread(sb.cgroup.all_pids)
        if now == last:
            return
        last = now


class SessionPool:
    def __init__(
        self,
        size: int,
        state_dir: Path,
        start: Callable[[SandboxSpec], Coroutine[Any, Any, LocalSandbox]],
        destroy: Callable[[LocalSandbox], Coroutine[Any, Any, None]],
        abandon: Callable[[LocalSandbox], None],
    ) -> None:
        self.markers = state_dir / "session-pool"
        self._start = start
        self._destroy_sb = destroy
        self._abandon_sb = abandon
        self.template: SandboxSpec | None = None
        self._pristine: dict[str, Pristine] = {}
        self._reserved: dict[str, tuple[LocalSandbox, asyncio.TimerHandle]] = {}
        self.live: set[str] = set()  # ready, reserved or being started: cleanup keeps them
        self.ready = WarmPool(size, self._make, self._destroy, self._abandon, self._untouched)

    @property
    def size(self) -> int:
        return self.ready.size

    def keep(self, template: SandboxSpec) -> None:
        """Fill the pool with sandboxes of this spec (a different one: they are replaced as
        they are claimed, since ``take`` refuses a spec that differs)."""
        self.template = template
        self.ready.refill()

    async def _make(self) -> LocalSandbox:
        if self.template is None:
            raise RuntimeError("session pool: no template spec yet")
        spec = dataclasses.replace(self.template, session_uuid=str(uuid.uuid4()))
        name = spec.session_uuid
        self.live.add(name)
        await asyncio.to_thread(self._mark, name)
        try:
            sb = await self._start(spec)
        except BaseException:
            self.live.discard(name)
            raise  # the runtime's start removed what it made; the marker goes at clean-up
        seen = await asyncio.to_thread(look, sb)
        if seen is None:
            await self._destroy(sb)
            raise RuntimeError(f"session pool: cannot read sandbox {name}")
        self._pristine[name] = seen
        return sb

    def _mark(self, name: str) -> None:
        self.markers.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.markers / name).touch()

    def unmark(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.markers / name).unlink()

    def leftovers(self) -> list[str]:
        """Pooled sandboxes of a dead process of this data dir (markers nobody here owns)."""
        with contextlib.suppress(FileNotFoundError):
            return [n for n in os.listdir(self.markers) if n not in self.live]
        return []

    def _untouched(self, sb: LocalSandbox) -> bool:
        name = sb.spec.session_uuid
        want = self._pristine.get(name)
        if sb.stopped or want is None:
            return False
        seen = look(sb)
        if seen != want:
            log.warning("pooled sandbox %s changed while it waited (%s -> %s): not handed out",
                        name, want, seen)  # fmt: skip
            return False
        return True

    async def _destroy(self, sb: LocalSandbox) -> None:
        name = sb.spec.session_uuid
        try:
            await self._destroy_sb(sb)
        finally:
            self._pristine.pop(name, None)
            self.live.discard(name)
            await asyncio.to_thread(self.unmark, name)

    def _abandon(self, sb: LocalSandbox) -> None:
        name = sb.spec.session_uuid
        try:
            self._abandon_sb(sb)
        finally:
            self._pristine.pop(name, None)
            self.live.discard(name)
            self.unmark(name)

    def reserve(self, network: bool) -> str | None:
        if network or self.template is None or self.template.network or self.size <= 0:
            return None
        sb = self.ready.claim()
        loop = asyncio.get_running_loop()
        loop.call_later(REFILL_DELAY_S, self.ready.refill)
        if sb is None:
            return None
        name = sb.spec.session_uuid
        timer = loop.call_later(RESERVE_TTL_S, self._expire, name)
        self._reserved[name] = (sb, timer)
        return name

    def _expire(self, name: str) -> None:
        found = self._reserved.pop(name, None)
        if found is not None:
            log.warning("reserved pooled sandbox %s was never started: destroyed", name)
            asyncio.get_running_loop().create_task(self._destroy(found[0]))

    async def unreserve(self, name: str, *, unused: bool = False) -> None:
        """Drop a reservation. ``unused``: the uuid was never given to a session (its creation
        failed before the insert): the untouched sandbox goes back to the pool, so refused
        creations (a user at the session cap) cost no sandbox start. Otherwise destroyed."""
        found = self._reserved.pop(name, None)
        if found is not None:
            found[1].cancel()
            if not (unused and self.ready.give_back(found[0])):
                await self._destroy(found[0])

    def is_unreserved(self, name: str) -> bool:
        """A pooled sandbox (ready or being started) that no session was given."""
        return name in self.live and name not in self._reserved

    async def take(self, spec: SandboxSpec) -> LocalSandbox | None:
        """The sandbox reserved for ``spec.session_uuid`` if it is still untouched and was
        started with exactly this spec (it leaves the pool: the caller owns it); ``None``
        otherwise (a reserved one that does not fit is destroyed: the caller starts cold)."""
        found = self._reserved.pop(spec.session_uuid, None)
        if found is None:
            return None
        sb, timer = found
        timer.cancel()
        # The owner (package_user) only tells the host where to promote pip downloads.
        fits = dataclasses.replace(sb.spec, package_user=spec.package_user) == spec
        if not fits or not self._untouched(sb):
            if not fits:
                log.info("pooled sandbox %s: the session's spec differs: started cold",
                         spec.session_uuid)  # fmt: skip
            await self._destroy(sb)
            return None
        sb.spec = spec
        self._pristine.pop(spec.session_uuid, None)
        self.live.discard(spec.session_uuid)
        await asyncio.to_thread(self.unmark, spec.session_uuid)
        return sb

    async def wait_full(self, timeout_s: float = 30.0) -> None:
        await self.ready.wait_full(timeout_s)

    async def close(self) -> None:
        """Destroy every pooled and reserved sandbox (shutdown)."""
        await self.ready.close()
        for name in list(self._reserved):
            await self.unreserve(name)
