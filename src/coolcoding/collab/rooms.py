"""What the co-editing hub holds per connection, document and workspace on one replica, and the
awareness bookkeeping (which connection owns which awareness client id)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from pycrdt import Awareness, Doc

from coolcoding.collab.document import SharedDoc
from coolcoding.collab.protocol import FrameError, read_var_uint
from coolcoding.services.workspace import WorkspaceRef


class Peer(Protocol):
    """One client connection as the hub sees it."""

    name: str  # the user's name: the only one their awareness states may show
    user_id: int | None  # recorded as the author (last_modified_by) of the saves it causes

    @property
    def writable(self) -> bool:
        """Whether its updates may apply (an editor whose access was not revoked)."""

    def send(self, frame: bytes | str) -> None:
        """Queue a frame (never blocks; a peer that cannot keep up is disconnected)."""


def awareness_entries(update: bytes) -> list[tuple[int, Any]]:
    """(client id, state) of each entry of an awareness update (state ``None``: removed)."""
    count, i = read_var_uint(update, 0)
    out: list[tuple[int, Any]] = []
    for _ in range(count):
        cid, i = read_var_uint(update, i)
        _, i = read_var_uint(update, i)  # clock
        n, i = read_var_uint(update, i)
        if i + n > len(update):
            raise FrameError("truncated awareness update")
        try:
            state = json.loads(update[i : i + n]) if n else None
        except ValueError as exc:
            raise FrameError("an awareness state is not JSON") from exc
        i += n
        out.append((cid, state))
    if i != len(update):
        raise FrameError("bytes after the awareness update")
    return out


def awareness_client_ids(update: bytes) -> list[int]:
    """The client ids an awareness update sets or removes."""
    return [cid for cid, _ in awareness_entries(update)]


def claimed_name(state: Any) -> str | None:
    """The ``user.name`` an awareness state shows to the others, if any."""
    if not isinstance(state, dict):
        return None
    user = state.get("user")
    name = user.get("name") if isinstance(user, dict) else None
    return name if isinstance(name, str) else None


@dataclass(eq=False)
class Room:
    """Awareness of one channel (a document or the workspace's presence) on this replica."""

    awareness: Awareness = field(default_factory=lambda: Awareness(Doc()))
    owners: dict[int, Peer] = field(default_factory=dict)  # awareness client id -> its peer

    def states_update(self) -> bytes | None:
        ids = [c for c in self.awareness.states if c != self.awareness.client_id]
        return self.awareness.encode_awareness_update(ids) if ids else None

    def remove_peer(self, peer: Peer) -> bytes | None:
        ids = [c for c, p in self.owners.items() if p is peer]
        for c in ids:
            del self.owners[c]
        ids = [c for c in ids if c in self.awareness.states]
        if not ids:
            return None
        self.awareness.remove_awareness_states(ids, "left")
        return self.awareness.encode_awareness_update(ids)


@dataclass(eq=False)
class OpenDoc:
    ref: WorkspaceRef
    path: str
    shared: SharedDoc
    room: Room
    peers: set[Peer] = field(default_factory=set)
    saver: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    save_task: asyncio.Task[None] | None = None
    ticker: asyncio.Task[None] | None = None
    closed: bool = False
    last_author: int | None = None  # the user of the last change applied (saves' author)
    save_error: str | None = None  # why the last save failed (cleared by the next good one)


@dataclass(eq=False)
class SessionRoom:
    """What this replica has open of one workspace: its documents, presence and event watch."""

    presence: Room = field(default_factory=Room)
    presence_peers: set[Peer] = field(default_factory=set)
    docs: dict[str, OpenDoc] = field(default_factory=dict)
    watcher: asyncio.Task[None] | None = None
